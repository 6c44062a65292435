#ifndef SHIPYARD_CYAML_SHIM_H
#define SHIPYARD_CYAML_SHIM_H
#include <yaml.h>
#endif
