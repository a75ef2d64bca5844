// mlp ops: placeholder registration until the family lands.
#include "binding/addon.h"

namespace wsf::binding {
void register_mlp_ops(Napi::Env, Napi::Object) {}
}  // namespace wsf::binding
