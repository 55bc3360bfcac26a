// Opening a run folder for writing, and --overwrite's swap (run_folder.h).
#include "train/run_folder.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "train/files.h"
#include "train/folder_guard.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

// "runs/x" -> "runs/.x.attnlab-": the start of every hidden sibling name
// of a replacement, whatever process made it.
std::string sibling_prefix(const fs::path& folder) {
  fs::path p = fs::absolute(folder).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "runs/x/"
  std::string name = ".";  // (built in steps: g++ 12 warns wrongly about "." + string)
  name += p.filename().string();
  name += ".attnlab-";
  return (p.parent_path() / name).string();
}

// Replacements left by runs that were killed before they finished one: the
// caller holds the folder's lock, so no live process is building them.
void remove_abandoned_replacements(const fs::path& folder) {
  const std::string prefix = sibling_prefix(folder);
  const fs::path parent = fs::path(prefix).parent_path();
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(parent, ec))
    if (e.path().string().rfind(prefix, 0) == 0) fs::remove_all(e.path(), ec);
}

// The folder a --resume argument names: a run folder, or the one that holds
// the checkpoint file.
fs::path resumed_folder(const std::string& resume) {
  return fs::is_directory(resume) ? fs::path(resume) : fs::path(resume).parent_path();
}

// Puts `a` where `b` was and `b` where `a` was. Atomic where the file
// system can exchange two names; elsewhere in two renames, with a moment
// in which `b` does not exist (a reader then finds no run, never a mix).
void swap_folders(const fs::path& a, const fs::path& b, const std::string& who) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    fail(who, ": cannot swap '", a.string(), "' into '", b.string(), "': ", std::strerror(errno));
  const fs::path aside = sibling_prefix(b) + "old-" + std::to_string(::getpid());
  std::error_code ec;
  fs::rename(b, aside, ec);
  check(!ec, who, ": cannot move '", b.string(), "' aside: ", ec.message());
  fs::rename(a, b, ec);
  if (ec) {
    std::error_code back;
    fs::rename(aside, b, back);
    fail(who, ": cannot move '", a.string(), "' into '", b.string(), "': ", ec.message());
  }
  // Should this fail, the old run stays at `aside`, an abandoned
  // replacement by its name, removed when the folder is next opened.
  fs::rename(aside, a, ec);
}

// The files attnlab writes into a run folder (trainer.h, convert.h,
// compare.h). Anything else in a folder that --overwrite replaces is the
// user's (notes beside the run, say) and moves into the new folder.
bool written_by_attnlab(const fs::path& file) {
  static const char* const kNames[] = {"config.json", "metrics.jsonl", "checkpoint.safetensors", "loss.png",
                                       "sample.txt",  "convert.md",    "compare.json",           RunLock::kFileName};
  const std::string name = file.filename().string();
  for (const char* n : kNames)
    if (name == n) return true;
  return name.find(".tmp-") != std::string::npos;  // a temporary file (files.h) left by a crash
}

// The names in `folder` that are not attnlab's.
std::vector<fs::path> users_files(const fs::path& folder) {
  std::vector<fs::path> names;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(folder, ec))
    if (!written_by_attnlab(e.path())) names.push_back(e.path().filename());
  return names;
}

// Moves `names` from `from` into `to`. On a failure, the ones moved so far
// go back, and it fails: the user's files are never left in a folder that
// is about to be removed.
void move_files(const std::vector<fs::path>& names, const fs::path& from, const fs::path& to, const std::string& who) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::error_code ec;
    fs::rename(from / names[i], to / names[i], ec);
    if (!ec) continue;
    std::error_code back;
    for (std::size_t j = 0; j < i; ++j) fs::rename(to / names[j], from / names[j], back);
    fail(who, ": cannot move '", (from / names[i]).string(), "' into '", to.string(), "': ", ec.message(),
         " (the old run was left in place)");
  }
}

}  // namespace

RunFolder::RunFolder(const Request& r) : who_(r.who) {
  try {
    open(r);
  } catch (...) {
    close();  // a refused or failed open leaves things as they were
    throw;
  }
}

void RunFolder::open(const Request& r) {
  const std::string& who = r.who;
  if (!r.out.empty()) {
    folder_ = r.out;
  } else if (!r.resume.empty()) {
    folder_ = resumed_folder(r.resume);
  } else {
    folder_ = fresh_numbered_folder("runs", who);
    numbered_ = created_ = true;
  }
  std::error_code ec;
  created_ = created_ || !fs::exists(folder_, ec);
  make_output_folder(folder_.string(), who + ": --out");
  lock_ = RunLock::take(folder_, who);
  remove_abandoned_replacements(folder_);

  const bool continues_here = !r.resume.empty() && fs::equivalent(resumed_folder(r.resume), folder_, ec);
  if (continues_here || !holds_run(folder_)) return;
  const std::string out = folder_.string();
  if (!r.overwrite) {
    const std::string held = describe_run(folder_);
    const bool has_checkpoint = fs::exists(folder_ / "checkpoint.safetensors", ec);
    if (!r.resume.empty())
      fail(who, ": --out '", out, "' holds another run (", held, ") than the one --resume continues; choose "
           "another --out, or replace it with --overwrite");
    if (who == "train" && has_checkpoint)
      fail(who, ": --out '", out, "' holds a run (", held, "); continue it with --resume ", out, " --out ", out,
           ", or start again in its place with --overwrite");
    fail(who, ": --out '", out, "' holds a run (", held, "); ",
         who == "train" ? "start again in its place with --overwrite" : "choose another --out, or replace it with --overwrite");
  }
  // The swap moves the old folder away and removes it: not the folder this
  // process (and the shell that started it) stands in.
  const fs::path target = fs::canonical(folder_, ec), here = fs::current_path(ec);
  const bool stands_in_it =
      !target.empty() && std::mismatch(target.begin(), target.end(), here.begin(), here.end()).first == target.end();
  check(!stands_in_it, who, ": --overwrite cannot replace '", out,
        "': it is the current folder or holds it; run attnlab from another folder");
  building_ = sibling_prefix(folder_) + "swap-" + std::to_string(::getpid());
  fs::create_directory(building_, ec);
  check(!ec, who, ": cannot create '", building_.string(), "' to build the new run in: ", ec.message());
  building_lock_ = RunLock::take(building_, who);
}

void RunFolder::checkpoint_written() {
  if (!replacing()) return;
  const std::vector<fs::path> users = users_files(folder_);
  move_files(users, folder_, building_, who_);
  try {
    swap_folders(building_, folder_, who_);
  } catch (const Error&) {
    move_files(users, building_, folder_, who_);  // back with the old run, which stays
    throw;
  }
  // The locks moved with their folders: the new run's is the folder's now.
  building_lock_.moved_to(folder_);
  lock_.moved_to(building_);
  std::error_code ec;
  fs::remove_all(building_, ec);  // the old run
  lock_ = std::move(building_lock_);
  building_.clear();
}

RunFolder::~RunFolder() { close(); }

void RunFolder::close() {
  std::error_code ec;
  if (replacing()) fs::remove_all(building_, ec);
  building_lock_ = RunLock();
  lock_ = RunLock();
  if (created_) fs::remove(folder_, ec);  // only if empty: a run that wrote nothing
}

}  // namespace attn
