#include "attention/kv_cache.h"

#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace attn {

KVCache::KVCache(int64_t layers, int64_t batch, const CacheLayout& layout, int64_t capacity,
                 const Device& device)
    : layers_(layers), batch_(batch), layout_(layout), capacity_(capacity) {
  check(layers > 0 && batch > 0 && layout.heads > 0 && layout.k_dim > 0 && layout.v_dim > 0 &&
            capacity > 0,
        "kv cache: every size must be positive, got layers=", layers, " batch=", batch,
        " heads=", layout.heads, " k_dim=", layout.k_dim, " v_dim=", layout.v_dim,
        " capacity=", capacity);
  for (int64_t l = 0; l < layers; ++l) {
    k_.push_back(zeros({batch, layout.heads, capacity, layout.k_dim}, DType::Float32, device));
    v_.push_back(zeros({batch, layout.heads, capacity, layout.v_dim}, DType::Float32, device));
  }
}

KVCache KVCache::rolling(int64_t layers, int64_t batch, const CacheLayout& layout, int64_t sinks,
                         int64_t window, const Device& device) {
  check(sinks >= 0, "kv cache: sinks=", sinks, ": expected 0 or more tokens");
  check(window >= 1, "kv cache: window=", window, ": expected at least 1 token");
  KVCache cache(layers, batch, layout, sinks + window, device);
  cache.rolling_ = true;
  cache.sinks_ = sinks;
  return cache;
}

void KVCache::make_room(int64_t tokens) {
  if (!rolling_ || length_ + tokens <= capacity_) return;
  const int64_t window = capacity_ - sinks_;
  check(tokens <= window, "kv cache: ", tokens, " new tokens do not fit a rolling window of ", window,
        "; feed at most ", window, " at a time");
  // Keep the sinks (slots 0 .. sinks-1) and the newest of the rest, moved
  // down so that the kept tokens stay in order: slots keep meaning positions.
  const int64_t drop = length_ + tokens - capacity_;
  const int64_t stay = length_ - sinks_ - drop;
  for (int64_t l = 0; l < layers_; ++l)
    for (Tensor* buffer : {&k_[l], &v_[l]}) {
      if (stay == 0) continue;
      // The source and destination overlap: copy the kept rows out first.
      const Tensor kept = narrow(*buffer, 2, sinks_ + drop, stay).clone();
      backend_for(kept.device()).copy(narrow(*buffer, 2, sinks_, stay).view_desc(), kept.view_desc());
    }
  length_ -= drop;
}

std::pair<Tensor, Tensor> KVCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  check(layer >= 0 && layer < layers_, "kv cache: layer ", layer, " is outside 0..", layers_ - 1);
  const int64_t new_tokens = k.dim() == 4 ? k.shape()[2] : -1;
  const Shape want_k = {batch_, layout_.heads, new_tokens, layout_.k_dim};
  const Shape want_v = {batch_, layout_.heads, new_tokens, layout_.v_dim};
  check(k.shape() == want_k && v.shape() == want_v, "kv cache: expected k ", shape_str(want_k),
        " and v ", shape_str(want_v), ", got ", shape_str(k.shape()), " and ", shape_str(v.shape()));
  const int64_t t = k.shape()[2];
  check(length_ + t <= capacity_, "kv cache: ", length_, " cached + ", t,
        " new tokens exceed the capacity of ", capacity_);
  // The cache holds values, not graph: decoding runs without gradients.
  Backend& be = backend_for(k.device());
  be.copy(narrow(k_[layer], 2, length_, t).view_desc(), k.view_desc());
  be.copy(narrow(v_[layer], 2, length_, t).view_desc(), v.view_desc());
  return {narrow(k_[layer], 2, 0, length_ + t), narrow(v_[layer], 2, 0, length_ + t)};
}

void KVCache::commit(int64_t tokens) {
  check(length_ + tokens <= capacity_, "kv cache: commit of ", tokens, " tokens overflows");
  length_ += tokens;
  seen_ += tokens;
}

std::size_t KVCache::bytes_per_token() const {
  return static_cast<std::size_t>(layers_ * batch_ * layout_.heads * (layout_.k_dim + layout_.v_dim)) *
         sizeof(float);
}

std::size_t KVCache::bytes() const { return bytes_per_token() * length_; }

}  // namespace attn
