#include "core/fs.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <csignal>
#include <cstdio>
#include <mutex>
#include <set>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <system_error>

#include "core/error.h"
#include "core/log.h"

namespace portrait {

[[noreturn]] void throw_write_error(std::string_view what, const fs::path& path, int err) {
  std::string msg = std::string(what) + " " + path.string() + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT || err == EFBIG)
    msg += " (the filesystem or quota is full, or the file exceeds the size limit: free space there or "
           "write the output elsewhere; the unfinished file was removed and nothing was left under its final name)";
  throw std::runtime_error(msg);
}

const std::string& host_name() {
  static const std::string h = [] {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return std::string("localhost");
    std::string s(buf);
    for (char& c : s)
      if (c == '/' || c == '@') c = '_';
    return s;
  }();
  return h;
}

std::string temp_suffix() { return ".tmp." + std::to_string(::getpid()) + "@" + host_name(); }

int sweep_stale_temps(const fs::path& dir) {
  static std::mutex mu;
  static std::set<std::string> swept;
  std::error_code ec;
  const fs::path key = fs::weakly_canonical(dir.empty() ? fs::path(".") : dir, ec);
  {
    std::lock_guard<std::mutex> lk(mu);
    if (!swept.insert(key.string()).second) return 0;  // once per directory and process
  }
  int removed = 0;
  for (auto it = fs::directory_iterator(key, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t t = name.rfind(".tmp.");
    if (t == std::string::npos) continue;
    const std::string owner = name.substr(t + 5);  // "<pid>@<host>"
    const size_t at = owner.find('@');
    if (at == std::string::npos || owner.substr(at + 1) != host_name()) continue;  // another machine's
    long pid = 0;
    try {
      size_t used = 0;
      pid = std::stol(owner.substr(0, at), &used);
      if (used != at) continue;
    } catch (...) {
      continue;
    }
    if (pid <= 0 || pid == long(::getpid())) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (!rm) ++removed;
  }
  if (removed > 0)
    PLOG_INFO("removed {} unfinished temporary file(s) of stopped processes in {}", removed, key.string());
  return removed;
}

namespace {

fs::path temp_name_for(const fs::path& final_path) {
  return final_path.parent_path() / (final_path.filename().string() + temp_suffix());
}

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// A full disk shows up as a failed write(), or only at fsync()/close() when the filesystem
// allocates lazily; every one of them is checked, or a truncated file is renamed into place.
void fsync_file_checked(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_write_error("cannot reopen", p, errno);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw_write_error("cannot flush", p, err);
  }
  ::close(fd);
}

void write_all(int fd, std::string_view bytes, const fs::path& p) {
  const char* d = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, d, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_write_error("cannot write", p, errno);
    }
    d += n;
    left -= size_t(n);
  }
}

std::string to_hex(const unsigned char* d, unsigned n) {
  static const char* kHex = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (unsigned i = 0; i < n; ++i) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

void write_file_atomic(const fs::path& path, std::string_view content) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  AtomicOutput out(path);
  const int fd = ::open(out.temp_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_write_error("cannot create", out.temp_path(), errno);
  try {
    write_all(fd, content, out.temp_path());
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw_write_error("cannot write", out.temp_path(), errno);
  out.commit();
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path.string() + ": " +
                                   std::error_code(errno, std::generic_category()).message());
  // One allocation of the file's size (istreambuf_iterator grows the string step by step,
  // briefly holding up to twice the file). The size is only a hint: files that report 0
  // (/proc), cannot seek (pipes) or change while read are finished by the append.
  std::string s;
  f.seekg(0, std::ios::end);
  const std::streamoff size = f ? std::streamoff(f.tellg()) : -1;
  f.clear();
  f.seekg(0, std::ios::beg);
  f.clear();
  if (size > 0) {
    s.resize(size_t(size));
    f.read(s.data(), size);
    s.resize(size_t(f.gcount()));
    f.clear();
  }
  s.append(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return s;
}

AtomicOutput::AtomicOutput(fs::path final_path)
    : final_(std::move(final_path)), temp_(temp_name_for(final_)) {
  if (final_.has_parent_path()) fs::create_directories(final_.parent_path());
  sweep_stale_temps(final_.parent_path());
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void AtomicOutput::commit() {
  if (committed_) return;
  fsync_file_checked(temp_);
  fs::rename(temp_, final_);  // throws fs::filesystem_error naming both paths
  committed_ = true;
  fsync_path(final_.has_parent_path() ? final_.parent_path() : fs::path("."));
}

AtomicDir::AtomicDir(fs::path final_path) : final_(std::move(final_path)) {
  temp_ = final_.parent_path() / ("." + final_.filename().string() + temp_suffix());
  std::error_code ec;
  if (final_.has_parent_path()) fs::create_directories(final_.parent_path());
  sweep_stale_temps(final_.parent_path());
  fs::remove_all(temp_, ec);  // a stale one of a process that had this pid
  fs::create_directories(temp_);
}

AtomicDir::~AtomicDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

void AtomicDir::commit() {
  if (committed_) return;
  for (const auto& e : fs::directory_iterator(temp_))
    if (e.is_regular_file()) fsync_file_checked(e.path());
  fsync_path(temp_);
  const fs::path old = final_.parent_path() / ("." + final_.filename().string() + ".old" + temp_suffix());
  std::error_code ec;
  fs::remove_all(old, ec);
  const bool replace = fs::exists(final_);
  if (replace) fs::rename(final_, old);
  fs::rename(temp_, final_);
  committed_ = true;
  if (replace) fs::remove_all(old, ec);
  fsync_path(final_.has_parent_path() ? final_.parent_path() : fs::path("."));
}

AtomicStream::AtomicStream(fs::path final_path) : file_(std::move(final_path)) {
  f_.open(file_.temp_path(), std::ios::binary | std::ios::trunc);
  if (!f_) throw_write_error("cannot create", file_.temp_path(), errno);
}

void AtomicStream::commit() {
  errno = 0;
  f_.flush();
  const bool ok = bool(f_);
  f_.close();  // sets failbit when the last flush fails
  if (!ok || f_.fail()) throw_write_error("cannot write", file_.temp_path(), errno != 0 ? errno : EIO);
  file_.commit();
}

void fsync_dir(const fs::path& dir) { fsync_path(dir.empty() ? fs::path(".") : dir); }

DirLock::DirLock(const fs::path& dir, std::string_view what) {
  fs::create_directories(dir);
  const fs::path lock = dir / kLockFileName;
  fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw DataError("cannot create the lock file " + lock.string() + ": " + std::strerror(errno) +
                    " (" + std::string(what) + " must be a writable directory)");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw DataError(std::string(what) + " '" + dir.string() +
                      "' is in use by another running command (it holds " + lock.string() +
                      "). Wait for it to finish, or write into another directory.");
    throw DataError("cannot lock " + lock.string() + ": " + std::strerror(err));
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

void check_output_not_input(const fs::path& output, std::string_view output_key,
                            const std::vector<NamedInput>& inputs) {
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(fs::absolute(output), ec);
  for (const NamedInput& in : inputs) {
    if (in.path.empty()) continue;
    bool same = false;
    std::error_code e1;
    if (fs::exists(output, e1) && fs::exists(in.path, e1)) same = fs::equivalent(output, in.path, e1);
    if (!same) {
      std::error_code e2;
      same = !out.empty() && fs::weakly_canonical(fs::absolute(in.path), e2) == out;
    }
    if (same)
      throw ConfigError(std::string(output_key) + " '" + output.string() + "' is the input " + in.key + " ('" +
                        in.path.string() + "'): writing it would destroy the input. Choose another " +
                        std::string(output_key) + ".");
  }
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size());
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  return to_hex(md, n);
}

std::string sha256_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path.string());
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::string buf(1 << 16, '\0');
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(f.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  return to_hex(md, n);
}

}  // namespace portrait
