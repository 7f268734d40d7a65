/*
 * An example native plugin: the host's entropy pool and open file handles, read from /proc, plus a
 * counter of its own rounds. Build it with the package (`swift build` makes libVigilExamplePlugin.so)
 * or alone:
 *
 *   cc -shared -fPIC -I plugins/include -o example.so plugins/native-example/example.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigil_plugin.h"

typedef struct {
    unsigned long rounds;
    char prefix[64];
} example_state;

static int read_number(const char *path, double *out) {
    FILE *file = fopen(path, "r");
    if (!file) return -1;
    int ok = fscanf(file, "%lf", out) == 1;
    fclose(file);
    return ok ? 0 : -1;
}

static int example_init(const char *config, void **state, char *error, size_t error_size) {
    example_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    /* The manifest's config text: an optional metric name prefix. */
    snprintf(s->prefix, sizeof s->prefix, "%s", config && config[0] ? config : "example");
    *state = s;
    return 0;
}

static int example_collect(void *state, vigil_emit_fn emit, void *context, char *error, size_t error_size) {
    example_state *s = state;
    char name[128];
    double entropy, files[3];
    s->rounds++;
    snprintf(name, sizeof name, "%s_rounds_total", s->prefix);
    emit(context, name, NULL, 0, (double)s->rounds, VIGIL_METRIC_COUNTER, "Rounds this plugin has collected.");
    if (read_number("/proc/sys/kernel/random/entropy_avail", &entropy) == 0) {
        snprintf(name, sizeof name, "%s_entropy_available_bits", s->prefix);
        emit(context, name, NULL, 0, entropy, VIGIL_METRIC_GAUGE, "Bits of entropy available to the kernel.");
    }
    FILE *file = fopen("/proc/sys/fs/file-nr", "r");
    if (!file) {
        snprintf(error, error_size, "cannot read /proc/sys/fs/file-nr");
        return -1;
    }
    int fields = fscanf(file, "%lf %lf %lf", &files[0], &files[1], &files[2]);
    fclose(file);
    if (fields != 3) {
        snprintf(error, error_size, "unexpected /proc/sys/fs/file-nr");
        return -1;
    }
    vigil_label kind[] = { { "state", "allocated" } };
    snprintf(name, sizeof name, "%s_file_handles", s->prefix);
    emit(context, name, kind, 1, files[0], VIGIL_METRIC_GAUGE, "File handles by state.");
    kind[0].value = "maximum";
    emit(context, name, kind, 1, files[2], VIGIL_METRIC_GAUGE, "File handles by state.");
    return 0;
}

static void example_shutdown(void *state) { free(state); }

static const vigil_plugin example = {
    .abi_version = VIGIL_PLUGIN_ABI_VERSION,
    .name = "native-example",
    .init = example_init,
    .collect = example_collect,
    .shutdown = example_shutdown,
};

const vigil_plugin *vigil_plugin_entry(void) { return &example; }
