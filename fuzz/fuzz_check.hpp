// CHECK for fuzz targets: an invariant that fails is a crash libFuzzer records, in every build mode.
#pragma once

#include <cstdio>
#include <cstdlib>

#define PUFF_FUZZ_CHECK(cond)                                                         \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)
