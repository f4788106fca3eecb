// `portrait score`: see score.h.
#include "infer/score.h"

#include <cmath>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/calibration.h"
#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "infer/embeddings_file.h"
#include "infer/h5.h"
#include "kernels/dispatch.h"
#include "kernels/heads.h"

namespace portrait::infer {

namespace k = portrait::kernels;

ScoreParams score_params_from_config(const cfg::Node& root) {
  ScoreParams p;
  cfg::Section s(root, "score");
  s.read("embeddings", p.embeddings);
  s.read("output_dir", p.output_dir);
  s.read("top_m", p.top_m, 0, k::kHeadsMaxTopM);
  s.read("write_probabilities", p.write_probabilities);
  s.read("calibrate", p.calibrate);
  s.read("block_rows", p.block_rows, int64_t{1});
  s.read("threads", p.threads, 0, 1024);
  s.read_enum("device", p.device, {"auto", "cpu", "cuda"});
  s.finish();
  return p;
}

ScoreSummary run_score(const ScoreParams& p) {
  auto t0 = std::chrono::steady_clock::now();
  if (p.embeddings.empty()) throw ConfigError("score.embeddings: the embeddings file is mandatory");
  if (p.output_dir.empty()) throw ConfigError("score.output_dir is mandatory");
  const k::Backend backend = k::choose_backend(p.device, "score.device");
  EmbeddingsFile e = read_embeddings(p.embeddings, false, true);
  if (e.head_targets == 0)
    throw DataError(p.embeddings + ": no /head (the model has no purchase heads, or embed.export_head=false)");
  k::HeadsWeights w;
  w.w1 = e.w1.data();
  w.b1 = e.b1.data();
  w.w2 = e.w2.data();
  w.b2 = e.b2.data();
  w.d = int(e.dim);
  w.h = int(e.head_hidden);
  w.c = int(e.head_targets);
  k::HeadsParams hp;
  if (e.head_activation == "relu")
    hp.activation = k::Activation::kRelu;
  else if (e.head_activation == "gelu")
    hp.activation = k::Activation::kGeluErf;
  else
    throw DataError(p.embeddings + ": unknown head activation '" + e.head_activation + "'");
  hp.num_threads = p.threads;
  const int64_t N = e.n, C = w.c;
  k::heads_validate(N, w, p.top_m > 0 ? std::min<int64_t>(p.top_m, std::max<int64_t>(N, 1)) : 1);

  const std::filesystem::path dir(p.output_dir);
  for (const char* name : {"scores.h5", "top_audiences.csv"})
    check_output_not_input(dir / name, std::string("score.output_dir's ") + name,
                           embeddings_inputs(e, "score.embeddings"));
  std::filesystem::create_directories(dir);
  ScoreSummary sum;
  sum.output_dir = p.output_dir;
  sum.users = N;
  sum.targets = C;
  sum.mean_probability.assign(size_t(C), 0.0);

  const k::HeadsRunner heads(w, hp, backend);
  calib::HeadCalibration cal;
  if (p.calibrate && !e.head_calibration.empty()) {
    try {
      cal = calib::HeadCalibration::from_json(nlohmann::json::parse(e.head_calibration));
    } catch (const nlohmann::json::exception& ex) {
      throw DataError(p.embeddings + ": /head/calibration is not JSON (" + ex.what() + ")");
    } catch (const DataError& ex) {
      throw DataError(p.embeddings + ": /head/calibration: " + ex.what());
    }
    if (!cal.heads.empty() && int64_t(cal.heads.size()) != C)
      throw DataError(fmt::format("{}: /head/calibration holds {} heads, /head has {} (corrupt file?)", p.embeddings,
                                  cal.heads.size(), C));
  }
  if (cal.enabled()) sum.calibration = cal.method + " fitted on " + (cal.fitted_on.empty() ? "?" : cal.fitted_on);
  // v [rows, C] row-major (probabilities) or, with `by_row`, [C, cols] (top-m per head).
  auto calibrate = [&](float* v, int64_t rows, int64_t cols, bool by_row) {
    if (!cal.enabled()) return;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        float& x = v[size_t(i * cols + j)];
        x = float(cal.apply(by_row ? i : j, double(x)));
      }
  };

  // Finite inputs give finite sigmoids; this guards the kernels too, since a NaN that
  // reached top-m would rank above every real probability.
  auto require_finite = [&](const float* v, size_t n, const char* what) {
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(v[i]))
        throw DataError("score: non-finite " + std::string(what) + " computed from " + p.embeddings +
                        "; nothing was written. Check the model and re-run `portrait embed`.");
  };
  // Both outputs are renamed into place only when both are complete (see search.cpp).
  AtomicOutput ao(dir / "scores.h5");
  std::optional<AtomicStream> top_csv;
  {
    h5::H f = h5::create_file(ao.temp_path());
    tag_derived_file(f, kScoresFormat, e, p.config_yaml);
    h5::set_attr(f, "activation", e.head_activation);
    h5::set_attr(f, "top_m", int64_t(p.top_m));
    h5::set_attr(f, "calibration", sum.calibration);
    h5::write_fixed_strings(f, "user_id", e.user_id);
    h5::write_vlen_strings(f, "target", e.head_target);
    if (p.write_probabilities) {
      h5::H ds = h5::create_float(f, "probability", {hsize_t(N), hsize_t(C)}, {false, 1 << 20, 0});
      std::vector<float> probs;
      for (int64_t b0 = 0; b0 < N; b0 += p.block_rows) {
        const int64_t nb = std::min(p.block_rows, N - b0);
        probs.resize(size_t(nb * C));
        const float* x = e.x.data() + size_t(b0) * size_t(e.dim);
        heads.probs(x, nb, probs.data());
        calibrate(probs.data(), nb, C, false);  // before the check: a corrupt map must not write NaN
        require_finite(probs.data(), probs.size(), "probability");
        for (int64_t i = 0; i < nb; ++i)
          for (int64_t c = 0; c < C; ++c) sum.mean_probability[size_t(c)] += probs[size_t(i * C + c)];
        h5::write_rows(ds, H5T_NATIVE_FLOAT, hsize_t(b0), hsize_t(nb), probs.data());
      }
      for (auto& m : sum.mean_probability) m /= double(std::max<int64_t>(N, 1));
    }
    if (p.top_m > 0) {
      const int m = p.top_m;
      std::vector<float> tp(size_t(C) * size_t(m));
      std::vector<int64_t> ti(size_t(C) * size_t(m));
      heads.topm(e.x.data(), N, m, tp.data(), ti.data());
      calibrate(tp.data(), C, m, true);
      for (size_t o = 0; o < ti.size(); ++o)
        if (ti[o] >= 0) require_finite(&tp[o], 1, "top-m probability");
      h5::H g = h5::create_group(f, "top");
      std::vector<std::string> ids(ti.size());
      auto& csv = top_csv.emplace(dir / "top_audiences.csv");
      csv << "target,rank,user_id,probability\n";
      for (int64_t c = 0; c < C; ++c)
        for (int j = 0; j < m; ++j) {
          size_t o = size_t(c) * size_t(m) + size_t(j);
          if (ti[o] < 0) continue;
          ids[o] = e.user_id[size_t(ti[o])];
          csv << csv_field(e.head_target[size_t(c)]) << ',' << (j + 1) << ',' << ids[o] << ','
              << fmt::format("{:.6g}", tp[o]) << '\n';
        }
      h5::write_i64(g, "row", ti.data(), {hsize_t(C), hsize_t(m)});
      h5::write_float(g, "probability", tp.data(), {hsize_t(C), hsize_t(m)});
      // Fixed strings are 1-D in the helper: write flat then it is [C*M]; keep [C, M] shape.
      size_t width = 1;
      for (auto& s : ids) width = std::max(width, s.size());
      std::string buf(ids.size() * width, '\0');
      for (size_t i = 0; i < ids.size(); ++i) std::copy(ids[i].begin(), ids[i].end(), buf.begin() + long(i * width));
      h5::H t = h5::fixed_string_type(width);
      hsize_t dims[2] = {hsize_t(C), hsize_t(m)};
      h5::H sp(H5Screate_simple(2, dims, nullptr), H5Sclose);
      h5::H ds(H5Dcreate2(g, "user_id", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      h5::check(ds.get(), "create top/user_id");
      h5::check(H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "write top/user_id");
    }
    h5::close_file(f, ao.temp_path());
  }
  if (top_csv) top_csv->commit();
  ao.commit();
  sum.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PLOG_INFO("score: {} users x {} heads -> {} (calibration: {})", N, C, p.output_dir, sum.calibration);
  return sum;
}

}  // namespace portrait::infer
