/* Compiles the plugin header on its own in every build, so a mistake in it fails the build here
 * rather than in a plugin author's. */
#include "vigil_plugin.h"

_Static_assert(sizeof(vigil_label) == 2 * sizeof(void *), "vigil_label layout");
