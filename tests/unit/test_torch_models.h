/*
 * test_torch_models.h - where the unit tests that run TorchScript models (test_torch,
 * test_infer, test_space) find their fixtures: the directory named by $HDB_TORCH_MODELS, which
 * ctest fills first from tests/unit/fixtures/make_torch_models.py (fixture torch_models).
 * Header-only, for the unit tests; owns nothing.
 */
#ifndef HDB_TEST_TORCH_MODELS_H
#define HDB_TEST_TORCH_MODELS_H

#include <stdio.h>
#include <stdlib.h>

/* The fixture directory (the environment's string), or NULL after telling how to make one. */
static inline const char *torch_models_dir(void) {
    const char *dir = getenv("HDB_TORCH_MODELS");
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "HDB_TORCH_MODELS is not set: run this test through ctest, or run "
                        "/usr/bin/python3 tests/unit/fixtures/make_torch_models.py DIR and set "
                        "HDB_TORCH_MODELS=DIR\n");
        return NULL;
    }
    return dir;
}

#endif /* HDB_TEST_TORCH_MODELS_H */
