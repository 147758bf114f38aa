/* gcs_int.h — what the GCS's files share (internal). */
#ifndef PRISM_GCS_INT_H
#define PRISM_GCS_INT_H

/* fsync the directory holding path, so that a rename into it survives a crash. */
int gcs__sync_dir(const char *path);

#endif
