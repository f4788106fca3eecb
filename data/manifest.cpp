#include "data/manifest.h"

#include <nlohmann/json.hpp>

#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "data/shard.h"

namespace portrait::data {

namespace {

const char* kRerunHint = " Re-run `portrait prep` into an empty prep.output_dir.";

}  // namespace

std::string vocab_fingerprint(const std::vector<std::string>& items, const std::vector<std::string>& categories,
                              const std::vector<std::string>& event_types, const std::string& tokenizer_sha256) {
  // Length-prefixed fields: no two different vocabularies serialize to the same bytes.
  std::string b = "portrait-vocab-1";
  auto put = [&](const std::string& s) {
    b += std::to_string(s.size());
    b += ':';
    b += s;
  };
  for (const auto* v : {&items, &categories, &event_types}) {
    put(std::to_string(v->size()));
    for (const auto& s : *v) put(s);
  }
  put(tokenizer_sha256);
  return sha256_hex(b);
}

PrepManifest write_prep_manifest(const std::filesystem::path& dir, const std::string& prep_run_id,
                                 const std::string& vocab_fp, const std::string& tokenizer_sha256,
                                 const std::vector<std::filesystem::path>& shard_files) {
  PrepManifest m;
  m.prep_run_id = prep_run_id;
  m.vocab_fingerprint = vocab_fp;
  m.tokenizer_sha256 = tokenizer_sha256;
  m.num_shards = int64_t(shard_files.size());
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& f : shard_files) {
    ManifestShard s{f.filename().string(), int64_t(std::filesystem::file_size(f)), sha256_file(f)};
    shards.push_back({{"file", s.file}, {"bytes", s.bytes}, {"sha256", s.sha256}});
    m.shards.push_back(std::move(s));
  }
  nlohmann::json j = {{"format", kManifestFormat},         {"format_version", kManifestFormatVersion},
                      {"prep_run_id", m.prep_run_id},      {"vocab_fingerprint", m.vocab_fingerprint},
                      {"tokenizer_sha256", m.tokenizer_sha256}, {"num_shards", m.num_shards},
                      {"shards", shards}};
  write_file_atomic(dir / kManifestFile, j.dump(2) + "\n");
  return m;
}

void remove_prep_manifest(const std::filesystem::path& dir) {
  std::filesystem::remove(dir / kManifestFile);  // throws naming the path when it cannot
  // The removal must reach the disk before any shard is replaced, or a crash could leave the
  // old manifest over new shards.
  fsync_dir(dir);
}

PrepManifest verify_prep_dir(const std::filesystem::path& dir, bool checksums) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw DataError("shard directory '" + dir.string() + "' does not exist");
  const fs::path mpath = dir / kManifestFile;
  const auto present = list_shard_files(dir);
  if (!fs::exists(mpath)) {
    if (present.empty()) throw DataError("no shard_*.h5 files in '" + dir.string() + "'." + kRerunHint);
    throw DataError("'" + dir.string() + "' has " + std::to_string(present.size()) + " shard file(s) but no " +
                    kManifestFile + ": the prep that wrote them did not finish (killed or failed), or they " +
                    "were copied without it, so they may be a partial or mixed set." + kRerunHint);
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(mpath));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(mpath.string() + ": not valid JSON (" + e.what() + ")." + kRerunHint);
  }
  if (!j.is_object() || j.value("format", "") != kManifestFormat)
    throw DataError(mpath.string() + ": not a portrait prep manifest (format must be '" + kManifestFormat + "')");
  if (j.value("format_version", int64_t{0}) != kManifestFormatVersion)
    throw DataError(mpath.string() + ": unsupported format_version " + j.value("format_version", nlohmann::json()).dump() +
                    " (this build reads " + std::to_string(kManifestFormatVersion) + ")." + kRerunHint);
  PrepManifest m;
  try {
    m.prep_run_id = j.at("prep_run_id").get<std::string>();
    m.vocab_fingerprint = j.at("vocab_fingerprint").get<std::string>();
    m.tokenizer_sha256 = j.at("tokenizer_sha256").get<std::string>();
    m.num_shards = j.at("num_shards").get<int64_t>();
    for (const auto& s : j.at("shards"))
      m.shards.push_back({s.at("file").get<std::string>(), s.at("bytes").get<int64_t>(), s.at("sha256").get<std::string>()});
  } catch (const nlohmann::json::exception& e) {
    throw DataError(mpath.string() + ": malformed manifest (" + e.what() + ")." + kRerunHint);
  }
  if (m.num_shards != int64_t(m.shards.size()) || m.shards.empty())
    throw DataError(mpath.string() + ": num_shards " + std::to_string(m.num_shards) + " but " +
                    std::to_string(m.shards.size()) + " shards listed (corrupt manifest)." + kRerunHint);
  std::set<std::string> listed;
  for (const auto& s : m.shards) {
    if (s.file.find('/') != std::string::npos || !listed.insert(s.file).second)
      throw DataError(mpath.string() + ": bad shard entry '" + s.file + "' (corrupt manifest)." + kRerunHint);
    const fs::path f = dir / s.file;
    std::error_code ec;
    const auto size = fs::file_size(f, ec);
    if (ec)
      throw DataError("shard " + f.string() + " is listed in " + mpath.string() +
                      " but missing: the set of shards is incomplete." + kRerunHint);
    if (int64_t(size) != s.bytes)
      throw DataError("shard " + f.string() + " has " + std::to_string(size) + " bytes, " + mpath.string() +
                      " records " + std::to_string(s.bytes) + ": it is not the file this prep wrote." + kRerunHint);
    if (checksums && sha256_file(f) != s.sha256)
      throw DataError("shard " + f.string() + " does not match its sha256 in " + mpath.string() +
                      " (modified or corrupt)." + kRerunHint);
  }
  for (const auto& f : present)
    if (!listed.count(f.filename().string()))
      throw DataError("shard " + f.string() + " is not listed in " + mpath.string() +
                      ": it was left by another prep run and would mix two runs' users." + kRerunHint);
  return m;
}

}  // namespace portrait::data
