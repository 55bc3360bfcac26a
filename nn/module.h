// Module: a tree of named parameters and child modules, like torch.nn.Module.
//
// A parameter is a leaf tensor with requires_grad, owned by the module that
// registered it. Names are paths through the tree ("blocks.0.attn.wq.weight"):
// the state dict, the optimizer's weight-decay groups and checkpoints all use
// them.
//
// Module and Linear are the base layer of nn/: attention/ builds its modules
// on them, and the rest of nn/ (blocks, the GPT) builds on attention/.
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace attn {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter below this module, depth first, in registration order.
  std::vector<std::pair<std::string, Tensor*>> named_parameters();
  std::vector<Tensor*> parameters();
  int64_t num_parameters();
  void zero_grad();

  // Parameters and buffers (e.g. BatchNorm running statistics) by name.
  std::map<std::string, Tensor> state_dict();
  // Copies values in place. Every name must exist with the same shape;
  // errors name the first tensor that does not fit.
  void load_state_dict(const std::map<std::string, Tensor>& state);

  // Training mode matters for dropout and BatchNorm.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Moves every parameter and buffer to `device` (in place, keeping names).
  void to(const Device& device);

 protected:
  Tensor& register_parameter(const std::string& name, Tensor value);
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    children_.emplace_back(name, child);
    return child;
  }
  // Puts `child` where the child called `name` was (keeping its place in
  // the parameter order).
  void replace_module(const std::string& name, std::shared_ptr<Module> child);

 private:
  void collect(const std::string& prefix, bool with_buffers,
               std::vector<std::pair<std::string, Tensor*>>& out);
  // deque: references stay valid as more are registered.
  std::deque<std::pair<std::string, Tensor>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace attn
