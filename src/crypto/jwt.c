/* placeholder: being written */
#include "crypto/jwt.h"
