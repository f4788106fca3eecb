// The model artefact shared by training (which writes it inside every checkpoint) and
// inference (which loads it): a directory
//
//   <dir>/model.json   {"format": "portrait-model", "format_version": 1, "config": {...},
//                       "tokenizer_sha256": "...", "vocab_fingerprint": "..." (of the shards
//                       trained on, data/manifest.h), "step": N, ...,
//                       "checksums": {"model.pt": sha256}}
//   <dir>/model.pt     torch::serialize archive with sub-archives "encoder", "head",
//                       "temperature"
//
// Built in a hidden ".<dir>.tmp.<pid>@<host>" (core/fs.h AtomicDir) from archives serialised in
// memory and written with checked writes, then renamed: a crash or a full disk never leaves a
// directory that looks complete, nor a half-written copy; model.json is checked (format tag and version) on load, model.pt against its
// recorded sha256 (a flipped bit would otherwise load silently and embed everyone as NaN),
// and every weight must be finite.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "models/encoder.h"
#include "models/losses.h"
#include "models/model_config.h"

namespace portrait {

inline constexpr const char* kModelFormat = "portrait-model";
inline constexpr int kModelFormatVersion = 1;

/// Everything inference needs: encoder, purchase heads, temperatures, and provenance.
struct ModelBundle {
  ModelConfig cfg;
  UserEncoder encoder{nullptr};
  PurchaseHead head{nullptr};
  LearnedTemperature temperature{nullptr};  ///< contrastive (dense + CLIP) inverse temperature
  nlohmann::json meta = nlohmann::json::object();  ///< tokenizer_sha256, step, data info, ...

  /// Builds fresh modules from `cfg` (random init from the current torch seed).
  static ModelBundle create(const ModelConfig& cfg, double init_temperature = 0.07,
                            bool learn_temperature = true);
  /// All parameters (encoder, head, temperature) in a fixed order.
  std::vector<torch::Tensor> parameters() const;
  void train(bool on);
  void to(const torch::Device& d);
};

nlohmann::json model_config_to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const nlohmann::json& j);

/// Writes the bundle to `dir` atomically (replacing an existing directory).
void save_model(const ModelBundle& m, const std::filesystem::path& dir);
/// Loads a bundle; throws std::runtime_error naming the file on a missing or foreign format.
ModelBundle load_model(const std::filesystem::path& dir, const torch::Device& device = torch::kCPU);

/// {"<name>": sha256 of dir/<name>} for each name: the checksums an artefact records.
nlohmann::json checksum_files(const std::filesystem::path& dir, const std::vector<std::string>& names);
/// Throws DataError naming the first file of `sums` in `dir` that is missing or whose sha256
/// differs (`recorded_in` names the file that recorded them).
void verify_checksums(const std::filesystem::path& dir, const nlohmann::json& sums,
                      const std::filesystem::path& recorded_in);
/// Throws DataError naming `source` and the first tensor holding a NaN or infinity.
void check_finite_weights(const ModelBundle& m, const std::string& source);

/// Writes `m`'s parameters into / reads them from an archive (used by the trainer's own
/// checkpoints too).
void save_model_weights(const ModelBundle& m, torch::serialize::OutputArchive& ar);
/// Writes an archive to `path` through write_file_atomic: torch serialises into memory and
/// every byte that reaches the disk is checked, so a full disk is a clear exception naming the
/// file (torch's own file writer aborts the process from a destructor instead).
void save_archive(torch::serialize::OutputArchive& ar, const std::filesystem::path& path);
void load_model_weights(ModelBundle& m, torch::serialize::InputArchive& ar);

}  // namespace portrait
