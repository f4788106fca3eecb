// Files that never look complete unless they are: every output is written under a temporary
// name in the same directory and renamed into place (rename is atomic on POSIX), so a crash
// leaves either the old file, nothing, or a "*.tmp.<pid>" that is obviously unfinished.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portrait {

namespace fs = std::filesystem;

/// Writes `content` to `path` atomically (temp file, fsync, rename). Creates parent dirs.
void write_file_atomic(const fs::path& path, std::string_view content);

/// Reads a whole file; throws std::runtime_error naming the path if it cannot be read.
std::string read_file(const fs::path& path);

/// An output produced by some writer (HDF5, a stream, ...) under `temp_path()`, then moved
/// into place by `commit()`. Destroyed without commit, it deletes the temporary file.
class AtomicOutput {
 public:
  explicit AtomicOutput(fs::path final_path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const fs::path& temp_path() const { return temp_; }
  const fs::path& final_path() const { return final_; }
  /// fsyncs the temporary file and renames it to the final path.
  void commit();

 private:
  fs::path final_, temp_;
  bool committed_ = false;
};

/// An exclusive advisory lock (flock) on `<dir>/.portrait.lock`, held for the object's life:
/// two commands writing into one output directory would interleave their files (two preps
/// mixing their shards), so the second fails at once instead. The lock file is left in place:
/// deleting it while another process waits on it would let a third one lock a new inode.
/// The kernel drops the lock when the process dies, so a kill never leaves a stale lock.
class DirLock {
 public:
  /// Creates `dir` if needed; throws DataError naming the directory and `what` (e.g.
  /// "prep.output_dir") when another process holds the lock.
  DirLock(const fs::path& dir, std::string_view what);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

inline constexpr const char* kLockFileName = ".portrait.lock";

/// One input of a command, for check_output_not_input: the config key that named it and a
/// file the command reads (callers expand directories into the files they read).
struct NamedInput {
  std::string key;
  fs::path path;
};

/// Throws ConfigError when `output` (named by config key `output_key`) is one of the inputs:
/// the same path, or another name of the same file (hard or symbolic link). Writing the
/// output would destroy the input before, or while, it is read.
void check_output_not_input(const fs::path& output, std::string_view output_key,
                            const std::vector<NamedInput>& inputs);

/// fsyncs a directory, so renames and removals in it survive a crash.
void fsync_dir(const fs::path& dir);

/// Lower-case hex SHA-256 of a byte string / of a file's contents (streamed).
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const fs::path& path);

}  // namespace portrait
