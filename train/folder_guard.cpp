// What a folder holds (folder_guard.h).
#include "train/folder_guard.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/checkpoint.h"

namespace attn {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool holds_run(const fs::path& folder) {
  std::error_code ec;
  return fs::exists(folder / "config.json", ec) || fs::exists(folder / "checkpoint.safetensors", ec);
}

namespace {

// The stored options of the run, from its config.json (null when missing or unreadable).
json stored_config(const fs::path& folder) {
  std::ifstream f(folder / "config.json");
  if (!f) return json();
  return json::parse(f, nullptr, false);
}

}  // namespace

std::string describe_run(const fs::path& folder) {
  const json config = stored_config(folder);
  json model = config.is_object() ? config.value("model", json()) : json();
  std::string of_steps;
  if (config.is_object() && config.value("steps", json()).is_number_integer())
    of_steps = " of " + std::to_string(config["steps"].get<int64_t>());
  auto attention = [&] {
    const json a = model.is_object() ? model.value("attention", json()) : json();
    return "attention " + (a.is_string() ? a.get<std::string>() : std::string("unknown"));
  };
  std::error_code ec;
  if (!fs::exists(folder / "checkpoint.safetensors", ec)) return "no checkpoint yet, " + attention();
  try {
    const CheckpointData d = load_checkpoint((folder / "checkpoint.safetensors").string());
    model = json::parse(d.model_config, nullptr, false);  // the checkpoint's own word
    return "step " + std::to_string(d.step) + of_steps + ", " + attention();
  } catch (const Error&) {
    return "a checkpoint attnlab cannot read, " + attention();
  }
}

fs::path fresh_numbered_folder(const fs::path& parent, const std::string& who) {
  std::error_code ec;
  fs::create_directories(parent, ec);
  check(!ec, who, ": cannot create the folder '", parent.string(), "' for runs without --out: ", ec.message());
  int64_t largest = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name.size() <= 9 && name.find_first_not_of("0123456789") == std::string::npos)
      largest = std::max<int64_t>(largest, std::stoll(name));
  }
  // create_directory is atomic: if another run made the same number first,
  // it returns false and we take the next one.
  for (int64_t n = largest + 1;; ++n) {
    const fs::path folder = parent / std::to_string(n);
    if (fs::create_directory(folder, ec)) return folder;
    check(!ec, who, ": cannot create the run folder '", folder.string(), "': ", ec.message());
  }
}

}  // namespace attn
