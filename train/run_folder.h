// A run folder opened for writing by one run: the guard against silent
// overwrites, the one-writer lock and --overwrite's replacement, in one
// object that train(), convert and compare hold while they write.
//
// Opening decides where the run's files go:
//   - a folder that holds no run (folder_guard.h): straight into it;
//   - the folder that --resume continues: straight into it;
//   - a folder that holds a run, without --overwrite: refused, one line
//     naming the folder, what it holds and the ways on, nothing touched;
//   - with --overwrite: into a hidden sibling, ".<name>.attnlab-swap-<pid>".
//     The old run stays whole and readable (sample, --resume) until the new
//     one has written its first checkpoint; then the two folders trade
//     places in one atomic rename (renameat2 RENAME_EXCHANGE) and the old
//     one is removed. A reader sees the old run or the new one, never a mix.
//     Files of the user's in the old folder (not attnlab's) move along.
// The folder's lock (run_lock.h) is held throughout, and the sibling has
// its own, which becomes the folder's lock in the swap.
#pragma once
#include <filesystem>
#include <string>

#include "train/run_lock.h"

namespace attn {

class RunFolder {
 public:
  struct Request {
    std::string out;         // the run folder; "" = the --resume folder, else a new runs/<N>
    std::string resume;      // the run folder or checkpoint this run continues ("" = a new run)
    bool overwrite = false;  // may replace a run that `out` holds
    std::string who = "train";  // the command, first word of every message
  };
  explicit RunFolder(const Request& request);
  // A replacement that never wrote its first checkpoint is removed (the
  // old run stays as it was); a folder this object created and nothing was
  // written to is removed too.
  ~RunFolder();
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;

  // The folder the run belongs in: --out as given, or the runs/<N> chosen.
  const std::filesystem::path& folder() const { return folder_; }
  // Where files go now: the hidden sibling until the swap, then folder().
  const std::filesystem::path& path() const { return replacing() ? building_ : folder_; }
  bool numbered() const { return numbered_; }
  bool replacing() const { return !building_.empty(); }

  // Called after each checkpoint is saved into path(): the first one of a
  // replacement swaps it in.
  void checkpoint_written();

 private:
  void open(const Request& request);
  void close();
  std::string who_;
  std::filesystem::path folder_, building_;
  RunLock lock_, building_lock_;
  bool numbered_ = false, created_ = false;
};

}  // namespace attn
