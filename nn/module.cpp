#include "nn/module.h"

#include "core/dispatch.h"
#include "core/error.h"

namespace attn {

Tensor& Module::register_parameter(const std::string& name, Tensor value) {
  value.set_requires_grad(true);
  params_.emplace_back(name, value);
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.emplace_back(name, value);
  return buffers_.back().second;
}

void Module::replace_module(const std::string& name, std::shared_ptr<Module> child) {
  for (auto& [n, c] : children_)
    if (n == name) {
      c = std::move(child);
      return;
    }
  fail("replace_module: no child called '", name, "'");
}

void Module::collect(const std::string& prefix, bool with_buffers,
                     std::vector<std::pair<std::string, Tensor*>>& out) {
  for (auto& [name, t] : params_) out.emplace_back(prefix + name, &t);
  if (with_buffers)
    for (auto& [name, t] : buffers_) out.emplace_back(prefix + name, &t);
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", with_buffers, out);
}

std::vector<std::pair<std::string, Tensor*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor*>> out;
  collect("", false, out);
  return out;
}

std::vector<Tensor*> Module::parameters() {
  std::vector<Tensor*> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (Tensor* p : parameters()) n += p->numel();
  return n;
}

void Module::zero_grad() {
  for (Tensor* p : parameters()) p->zero_grad();
}

std::map<std::string, Tensor> Module::state_dict() {
  std::vector<std::pair<std::string, Tensor*>> all;
  collect("", true, all);
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : all) out.emplace(name, t->detach());
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::vector<std::pair<std::string, Tensor*>> all;
  collect("", true, all);
  for (auto& [name, t] : all) {
    auto it = state.find(name);
    check(it != state.end(), "load_state_dict: '", name, "' is missing from the saved state");
    check(it->second.shape() == t->shape(), "load_state_dict: '", name, "' has shape ",
          shape_str(it->second.shape()), " in the saved state but ", shape_str(t->shape()),
          " in the model");
    check(it->second.dtype() == t->dtype(), "load_state_dict: '", name, "' is ",
          dtype_name(it->second.dtype()), " in the saved state but ", dtype_name(t->dtype()),
          " in the model");
  }
  check(state.size() == all.size(), "load_state_dict: the saved state has ", state.size(),
        " tensors but the model has ", all.size());
  for (auto& [name, t] : all) {
    // Copy into the existing storage: optimizers hold on to these tensors.
    const Tensor src = state.at(name).to(t->device());
    if (src.numel() > 0) backend_for(t->device()).copy(t->view_desc(), src.view_desc());
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(const Device& device) {
  std::vector<std::pair<std::string, Tensor*>> all;
  collect("", true, all);
  for (auto& [name, t] : all) {
    if (t->device() == device) continue;
    const bool grad = t->requires_grad();
    *t = t->detach().to(device);
    if (grad) t->set_requires_grad(true);
  }
}

}  // namespace attn
