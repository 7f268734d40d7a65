/* A plugin built against an ABI Vigil does not speak: loading it must be refused, clearly. */
#include "vigil_plugin.h"

static int nothing(void *state, vigil_emit_fn emit, void *context, char *error, size_t error_size) {
    (void)state; (void)emit; (void)context; (void)error; (void)error_size;
    return 0;
}

static const vigil_plugin wrong = {
    .abi_version = VIGIL_PLUGIN_ABI_VERSION + 41,
    .name = "wrong-abi",
    .init = 0,
    .collect = nothing,
    .shutdown = 0,
};

const vigil_plugin *vigil_plugin_entry(void) { return &wrong; }
