/*
 * Vigil native collector plugins: a versioned C ABI.
 *
 * A plugin is a shared object exporting one function, vigil_plugin_entry, that returns a description
 * of the plugin. Vigil loads it once with dlopen, refuses it when abi_version is not the one Vigil
 * speaks, calls init once, collect once per interval (always from the same thread, never two at once),
 * and shutdown when the plugin is removed or the daemon stops.
 *
 * During collect the plugin reports each sample through `emit`. Names follow Prometheus
 * ([a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]*); the strings are copied before emit returns.
 * Native plugins run inside the daemon: they are trusted code, the fastest kind, and a crash in one is
 * a crash of Vigil. Prefer exec or Lua plugins for anything that is not.
 */
#ifndef VIGIL_PLUGIN_H
#define VIGIL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. Bumped on any change to the structs or calls below. */
#define VIGIL_PLUGIN_ABI_VERSION 1u

typedef enum {
    VIGIL_METRIC_GAUGE = 0,
    VIGIL_METRIC_COUNTER = 1,
    VIGIL_METRIC_UNTYPED = 2,
} vigil_metric_type;

typedef struct {
    const char *name;
    const char *value;
} vigil_label;

/* Reports one sample. Returns 0, or -1 when it was refused (an invalid name, or past the plugin's
 * series limit); the plugin may go on. `help` may be NULL. */
typedef int (*vigil_emit_fn)(void *context, const char *name, const vigil_label *labels, size_t label_count,
                             double value, vigil_metric_type type, const char *help);

typedef struct {
    /* VIGIL_PLUGIN_ABI_VERSION as the plugin was built. */
    uint32_t abi_version;
    /* A short name, for logs. */
    const char *name;
    /* Once, before the first collect. `config` is the manifest's `config` text ("" when none).
     * Returns 0; otherwise writes why into `error` (NUL-terminated, at most error_size bytes). */
    int (*init)(const char *config, void **state, char *error, size_t error_size);
    /* Once per interval. Returns 0; otherwise writes why into `error`, and the round's samples are dropped. */
    int (*collect)(void *state, vigil_emit_fn emit, void *context, char *error, size_t error_size);
    /* Once, at the end. May be NULL. */
    void (*shutdown)(void *state);
} vigil_plugin;

/* The symbol Vigil looks up. */
const vigil_plugin *vigil_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif
