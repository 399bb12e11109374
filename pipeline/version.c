#include "tinyqat.h"

const char *tq_version(void) { return TQ_VERSION_STRING; }
