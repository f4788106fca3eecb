#include "core/fs.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <system_error>

#include "core/error.h"

namespace portrait {
namespace {

fs::path temp_name_for(const fs::path& final_path) {
  return final_path.parent_path() /
         (final_path.filename().string() + ".tmp." + std::to_string(::getpid()));
}

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
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
  {
    std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + out.temp_path().string());
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!f) throw std::runtime_error("write failed for " + out.temp_path().string());
  }
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
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void AtomicOutput::commit() {
  if (committed_) return;
  fsync_path(temp_);
  fs::rename(temp_, final_);  // throws fs::filesystem_error naming both paths
  committed_ = true;
  fsync_path(final_.has_parent_path() ? final_.parent_path() : fs::path("."));
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
