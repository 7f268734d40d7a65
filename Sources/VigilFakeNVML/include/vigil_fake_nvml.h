/*
 * The fake NVML library: the same C ABI as libnvidia-ml.so.1 for the symbols Vigil uses, with every
 * value and failure scripted by a JSON scenario (format in the README's testing section).
 *
 * The scenario file is $VIGIL_FAKE_NVML_CONFIG, or else fake-nvml.json beside the library file. It is
 * read again whenever it changes (write a new file and rename it over the old one), so a test or a demo
 * can lose a GPU, raise an XID or change a value while the client runs. "missing_symbols" is applied
 * once, when the library is loaded: those names are then not found by dlsym.
 *
 * Two functions exist only in the fake, for tests:
 */
#ifndef VIGIL_FAKE_NVML_H
#define VIGIL_FAKE_NVML_H

/* How many times the exported NVML function `name` was called since the library was loaded. */
unsigned long vigil_fake_nvml_calls(const char *name);
/* The scenario file in use (empty when none). */
const char *vigil_fake_nvml_scenario(void);

#endif
