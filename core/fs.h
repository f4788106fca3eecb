// Files that never look complete unless they are: every output is written under a temporary
// name in the same directory and renamed into place (rename is atomic on POSIX), so a crash
// leaves either the old file, nothing, or a "*.tmp.<pid>" that is obviously unfinished.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

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

/// Lower-case hex SHA-256 of a byte string / of a file's contents (streamed).
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const fs::path& path);

}  // namespace portrait
