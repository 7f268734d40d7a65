/* The declarations are all in include/vigil_nvml.h; this file makes the size asserts part of every
 * build (a header-only C target would never be compiled on its own). */
#include "vigil_nvml.h"

_Static_assert(sizeof(void *) == 8, "Vigil's NVML layouts are for LP64 platforms");
