// Files that never look complete unless they are: every output is written under a temporary
// name in the same directory and renamed into place (rename is atomic on POSIX), so a crash
// leaves either the old file, nothing, or a "*.tmp.<pid>@<host>" that is obviously unfinished
// (and removed by the next writer in that directory once its process is gone).
#pragma once

#include <filesystem>
#include <fstream>
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

/// A directory of outputs (a model, a checkpoint) built under a hidden temporary name beside
/// `final_path` (".<name>.tmp.<pid>") and renamed into place by `commit()`. Destroyed without
/// commit (an exception: a full disk, a failed write), it removes the temporary directory, so
/// a failed save neither leaves a half-written copy nor keeps the disk full.
class AtomicDir {
 public:
  explicit AtomicDir(fs::path final_path);  ///< creates the (empty) temporary directory
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  const fs::path& temp_path() const { return temp_; }
  const fs::path& final_path() const { return final_; }
  /// fsyncs every file (a failure throws), then replaces `final_path` with the directory.
  void commit();

 private:
  fs::path final_, temp_;
  bool committed_ = false;
};

/// A streamed output (CSV, JSONL) written to its temporary name through `out()`. A failed
/// write leaves the stream failed and is reported by `commit()`, which closes the stream
/// (checking the final flush) before renaming; destroyed without commit, it removes the
/// temporary file. Large outputs stream instead of being built in memory first.
class AtomicStream {
 public:
  explicit AtomicStream(fs::path final_path);
  std::ostream& out() { return f_; }
  template <class T>
  AtomicStream& operator<<(const T& v) {
    f_ << v;
    return *this;
  }
  void commit();

 private:
  AtomicOutput file_;
  std::ofstream f_;
};

/// ".tmp.<pid>@<host>": the suffix of this process's temporary outputs. The owner in the name
/// lets a later writer tell a dead process's leftovers (a kill, a crash, a power cut) from a
/// live one's, also on a filesystem shared by several machines.
std::string temp_suffix();
/// This machine's name as used in temp_suffix().
const std::string& host_name();

/// Removes the temporaries in `dir` (not recursive) left by processes of this machine that no
/// longer run; others' and live ones are kept. Once per directory and process: every
/// AtomicOutput / AtomicDir calls it for its directory, so a rerun cleans up what a killed run
/// left (a 2 GB synth temp, a half checkpoint). Returns the number removed.
int sweep_stale_temps(const fs::path& dir);

/// Throws std::runtime_error "<what> <path>: <strerror(err)>", with a hint to free space when
/// `err` says the disk, a quota or the file size limit is full.
[[noreturn]] void throw_write_error(std::string_view what, const fs::path& path, int err);

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
