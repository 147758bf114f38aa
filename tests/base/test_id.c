/* Ids: uniqueness (also across fork), derivation, hex round trip, parse rejections. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/id.h"

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, PRISM_ID_SIZE);
}

Test(id, new_ids_are_unique_and_typed)
{
	enum { N = 100000 };
	prism_id *ids = malloc(N * sizeof(*ids));
	for (int i = 0; i < N; i++) {
		ids[i] = prism_id_new(PRISM_ID_TASK);
		cr_assert_eq(prism_id_kind(ids[i]), PRISM_ID_TASK);
		cr_assert_not(prism_id_is_nil(ids[i]));
	}
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (int i = 1; i < N; i++)
		cr_assert_not(prism_id_eq(ids[i - 1], ids[i]), "duplicate id at %d", i);
	free(ids);
}

Test(id, derive_keeps_identity_changes_kind_and_index)
{
	prism_id t = prism_id_new(PRISM_ID_TASK);
	prism_id o1 = prism_id_derive(t, PRISM_ID_OBJECT, 1);
	prism_id o2 = prism_id_derive(t, PRISM_ID_OBJECT, 2);
	cr_assert_eq(prism_id_kind(o1), PRISM_ID_OBJECT);
	cr_assert_eq(prism_id_index(o2), 2);
	cr_assert_not(prism_id_eq(o1, o2));
	cr_assert_eq(memcmp(t.b, o1.b, 14), 0);
	cr_assert(prism_id_eq(prism_id_derive(o1, PRISM_ID_TASK, 0), t));
}

Test(id, forked_child_draws_different_ids)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	prism_id before = prism_id_new(PRISM_ID_OBJECT);
	pid_t pid = fork();
	if (pid == 0) {
		prism_id c = prism_id_new(PRISM_ID_OBJECT);
		_exit(write(p[1], &c, sizeof(c)) == sizeof(c) ? 0 : 1);
	}
	prism_id mine = prism_id_new(PRISM_ID_OBJECT), child;
	cr_assert_eq(read(p[0], &child, sizeof(child)), (ssize_t)sizeof(child));
	int st;
	waitpid(pid, &st, 0);
	cr_assert_not(prism_id_eq(mine, child));
	cr_assert_neq(memcmp(before.b, child.b, 8), 0, "child must re-seed its prefix");
	close(p[0]);
	close(p[1]);
}

Test(id, hex_round_trip)
{
	char hex[PRISM_ID_HEX_LEN + 1];
	prism_id a = prism_id_new(PRISM_ID_ACTOR), b;
	prism_id_to_hex(a, hex);
	cr_assert_eq(strlen(hex), 32);
	cr_assert_eq(prism_id_from_hex(hex, &b), 0);
	cr_assert(prism_id_eq(a, b));
	for (char *c = hex; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	cr_assert_eq(prism_id_from_hex(hex, &b), 0, "upper case is accepted");
	cr_assert(prism_id_eq(a, b));
}

Test(id, parse_rejects_bad_input)
{
	prism_id out = prism_id_new(PRISM_ID_NODE), keep = out;
	const char *bad[] = {
		"",
		"0123",
		"0123456789abcdef0123456789abcd0",   /* 31 digits */
		"0123456789abcdef0123456789abcd011", /* 33 digits */
		"0123456789abcdef0123456789abcdg1",  /* non-hex */
		"0123456789abcdef0123456789abcd 1",  /* space */
		"0123456789abcdef0123456789abcdff",  /* kind byte 0xff */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(prism_id_from_hex(bad[i], &out), -EINVAL, "accepted '%s'", bad[i]);
		cr_assert(prism_id_eq(out, keep), "output written on failure");
	}
	cr_assert_eq(prism_id_from_hex(NULL, &out), -EINVAL);
}
