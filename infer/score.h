// `portrait score`: purchase probability per head (target category) for every user of an
// embeddings export, with the fused heads kernel (kernels/heads.h) and the weights that
// `portrait embed` exported from the model's PurchaseHead (/head/W1, b1, W2, b2):
//   p[i, c] = sigmoid(W2[c] . act(W1 x_i + b1) + b2[c]),
// then, when the export carries the heads' calibration (/head/calibration, fitted by `portrait
// train` on the validation split: train.calibration) and score.calibrate is true, mapped by it
// (core/calibration.h), so "expected buyers" = the sum of the probabilities. The maps are
// non-decreasing, so each head's audience order is the raw one (isotonic may tie neighbours).
//
// Outputs in `output_dir`:
//   scores.h5  format = "portrait-scores" (+ the derived-file attributes), activation, top_m,
//     calibration ("none" | "<method> fitted on <split>");
//     /user_id [N] fixed strings, /probability [N, C] float32, /target [C] vlen names,
//     /top/row [C, M] int64 (row in the export, -1 = none), /top/user_id [C, M] fixed strings,
//     /top/probability [C, M] float32  — the best audience of each head (when top_m > 0)
//   top_audiences.csv  target,rank,user_id,probability   (when top_m > 0)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace portrait::infer {

inline constexpr const char* kScoresFormat = "portrait-scores";

struct ScoreParams {
  std::string embeddings;          ///< embeddings export with /head (mandatory)
  std::string output_dir;          ///< mandatory
  int top_m = 100;                 ///< best users per head (0 = no audiences, <= 1024)
  bool write_probabilities = true; ///< write /probability [N, C]
  bool calibrate = true;           ///< apply the export's head calibration (when it has one)
  int64_t block_rows = 65536;      ///< users per kernel call
  int threads = 0;                 ///< CPU threads (0 = all cores)
  std::string device = "auto";     ///< auto | cpu | cuda
  // Set by the caller:
  std::string config_yaml;
};

ScoreParams score_params_from_config(const cfg::Node& resolved_root);

struct ScoreSummary {
  std::string output_dir;
  int64_t users = 0, targets = 0;
  std::vector<double> mean_probability;  ///< per head
  std::string calibration = "none";      ///< what was applied
  double wall_s = 0;
};

ScoreSummary run_score(const ScoreParams& p);

}  // namespace portrait::infer
