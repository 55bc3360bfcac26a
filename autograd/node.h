// A node of the autograd graph: "this tensor was made by op `name` from
// `inputs`; here is how to turn the gradient of the output into gradients of
// the inputs". That is the whole idea of reverse-mode autodiff.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace attn {

// Given dL/d(output), returns dL/d(input_i) for each input, in order. An
// undefined Tensor means "no gradient for this input".
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

// What the backward pass needs of one input: where its gradient goes and the
// shape it must have, never the input's values. (Holding the input tensor
// itself kept every intermediate result of the forward pass alive until
// backward ran: gigabytes in a GPT training step. The values a backward
// really needs are the ones its closure captures, as in PyTorch.)
struct Edge {
  std::shared_ptr<Node> producer;    // the op that made the input; null for a leaf
  std::shared_ptr<TensorImpl> leaf;  // a leaf that requires grad (its .grad sums up); else null
  Shape shape;
  bool wants_grad() const { return producer || leaf; }
};

struct Node {
  std::string name;
  std::vector<Edge> inputs;
  BackwardFn backward;
  // Set once a backward pass has run without retain_graph: the closure and
  // its saved tensors are gone.
  bool released = false;

  // Dismantles the graph below this node iteratively (engine.cpp): the
  // implicit destructor recursed once per node (node -> edge -> node ...) and overflowed the stack on deep graphs that were never
  // backpropagated or were retained.
  Node() = default;
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void release() {
    backward = nullptr;
    inputs.clear();
    released = true;
  }
};

// Attaches a node to `out` when grad mode is on and some input requires a
// gradient; otherwise returns `out` untouched. Every differentiable op ends
// with `return record(out, "name", {inputs...}, [captures](const Tensor& g) {...});`
Tensor record(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward);

}  // namespace attn
