// The backward engine.
//
// 1. Sort the nodes reachable from the root so that every node comes after
//    all nodes that use its output (reverse topological order, by DFS).
// 2. Seed the root's gradient (1 for a scalar loss), then visit the nodes in
//    that order: each turns its output gradient into input gradients, which
//    are summed per producer (a tensor used twice gets both contributions).
// 3. Leaves (tensors made by the user with requires_grad) accumulate into
//    their .grad(); intermediate gradients are dropped when done.
#include "autograd/engine.h"

#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Tensor record(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!g_grad_enabled) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined()) {
      e.shape = t.shape();
      if (t.impl()->grad_fn) e.producer = t.impl()->grad_fn;
      else if (t.impl()->requires_grad) e.leaf = t.impl_ptr();
    }
    node->inputs.push_back(std::move(e));
  }
  node->backward = std::move(backward);
  out.impl()->grad_fn = std::move(node);
  return out;
}

Node::~Node() {
  // Without this, destroying the last handle on the output of a chain of n
  // ops recursed n levels deep (each node's inputs own the nodes below):
  // a stack overflow for graphs of ~10^5 nodes (~10^4 under ASan). Instead,
  // nodes that only this graph owns are detached from their tensors and
  // destroyed one at a time from a worklist.
  std::vector<std::shared_ptr<Node>> pending;
  auto take_inputs = [&pending](Node& n) {
    // The closure goes first: a captured input tensor would otherwise keep
    // its producer's count above one.
    n.backward = nullptr;
    for (Edge& e : n.inputs)
      if (e.producer && e.producer.use_count() == 1) pending.push_back(std::move(e.producer));
    n.inputs.clear();
  };
  take_inputs(*this);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    take_inputs(*n);
  }  // each `n` dies here with no inputs left: its own destructor does no deep work
}

namespace {

// Holds shared_ptrs: releasing a node drops its inputs, which may be the
// last owners of the nodes below it, and those must live until visited.
std::vector<std::shared_ptr<Node>> topological_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  // Iterative DFS: deep graphs (long training sequences) must not overflow the stack.
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  seen.insert(root.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const std::shared_ptr<Node>& child = node->inputs[next++].producer;
      if (child && seen.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};  // root first
}

void accumulate(Tensor& slot, const Tensor& g) {
  slot = slot.defined() ? add(slot, g) : g;
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  check(root.requires_grad(), "backward: this tensor does not require grad and has no grad_fn; ",
        "set requires_grad on an input before computing it");
  Tensor seed = grad_in;
  if (!seed.defined()) {
    check(root.numel() == 1, "backward: output has shape ", shape_str(root.shape()),
          "; backward() without a gradient needs a scalar (one element), or pass a gradient of "
          "that shape");
    seed = ones(root.shape(), DType::Float32, root.device());
  }
  check(seed.shape() == root.shape(), "backward: gradient has shape ", shape_str(seed.shape()),
        ", expected the output's shape ", shape_str(root.shape()));
  // Without these, an int64 gradient flowed unchanged through add/sum_to
  // into a float leaf's .grad (which optimizers then read as floats).
  check(seed.dtype() == DType::Float32, "backward: gradient must be float32, got ",
        dtype_name(seed.dtype()));
  check(seed.device() == root.device(), "backward: gradient is on ", seed.device().str(),
        ", expected the output's device ", root.device().str());

  NoGradGuard no_grad;  // the backward pass itself is not recorded
  const std::shared_ptr<Node> root_node = root.impl()->grad_fn;
  if (!root_node) {  // backward on a leaf: its gradient is the seed
    const Tensor old = root.grad();
    root.impl()->grad = (old.defined() ? add(old, seed) : seed.clone()).impl_ptr();
    return;
  }
  std::unordered_map<Node*, Tensor> grads;
  grads[root_node.get()] = seed;
  for (const std::shared_ptr<Node>& node : topological_order(root_node)) {
    auto it = grads.find(node.get());
    if (it == grads.end()) continue;
    if (node->released)
      fail("backward: the graph through '", node->name,
           "' was freed by an earlier backward(); call backward(grad, /*retain_graph=*/true) the "
           "first time to go through it twice");
    const Tensor g = it->second;
    grads.erase(it);
    std::vector<Tensor> in_grads = node->backward(g);
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Edge& in = node->inputs[i];
      if (i >= in_grads.size() || !in_grads[i].defined() || !in.wants_grad()) continue;
      check(in_grads[i].shape() == in.shape, "backward of ", node->name, ": gradient for input ",
            i, " has shape ", shape_str(in_grads[i].shape()), ", expected ", shape_str(in.shape));
      if (in.producer) {
        accumulate(grads[in.producer.get()], in_grads[i]);
      } else {
        // A leaf owns its gradient (an optimizer may scale it in place), so
        // a first contribution that anything else can still see (the
        // upstream gradient passed through, a view of it) is copied. A fresh
        // result that nothing shares, the usual case, is kept as it is.
        const Tensor old = in.leaf->grad ? Tensor(in.leaf->grad) : Tensor();
        const Tensor& g_in = in_grads[i];
        const bool unshared = g_in.impl_ptr().use_count() == 1 &&
                              g_in.impl()->storage.use_count() == 1 && g_in.is_contiguous() &&
                              g_in.offset() == 0;
        const Tensor sum = old.defined() ? add(old, g_in) : unshared ? g_in : g_in.clone();
        in.leaf->grad = sum.impl_ptr();
      }
    }
    if (!retain_graph) node->release();
  }
}

// --- the Tensor methods that belong to autograd ---

bool Tensor::requires_grad() const { return impl_->requires_grad || impl_->grad_fn != nullptr; }

Tensor& Tensor::set_requires_grad(bool on) {
  check(!on || dtype() == DType::Float32, "requires_grad: only float32 tensors can require grad, ",
        "got ", dtype_name(dtype()));
  check(!impl_->grad_fn, "requires_grad: can only be set on a leaf (a tensor made by the user, ",
        "not by an op); use detach() first");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl_->grad ? Tensor(impl_->grad) : Tensor(); }

void Tensor::zero_grad() { impl_->grad.reset(); }

Tensor Tensor::detach() const {
  return make_view(*this, shape(), strides(), offset());
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  run_backward(*this, grad, retain_graph);
}

}  // namespace attn
