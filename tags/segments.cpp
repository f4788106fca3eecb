// Segment ids and names, next-category predictions: the tags that come from `portrait
// segment` and `portrait score` outputs (read through infer/h5.h).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "infer/h5.h"
#include "tags/rfm.h"
#include "tags/tags.h"

namespace portrait::tags {

namespace h5 = portrait::infer::h5;

namespace {

// A command's output directory or the file itself.
std::filesystem::path resolve(const std::string& path, const char* file) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= file;
  if (!std::filesystem::exists(p)) throw DataError("tags: " + p.string() + " does not exist");
  return p;
}

h5::H open_format(const std::filesystem::path& p, const char* format, const char* key) {
  if (!h5::is_hdf5(p)) throw DataError(fmt::format("{} {}: not an HDF5 file", key, p.string()));
  h5::H f = h5::open_file(p);
  const std::string got = h5::has_attr(f, "format") ? h5::attr_str(f, "format") : "";
  if (got != format)
    throw DataError(fmt::format("{} {}: format '{}', expected '{}'", key, p.string(), got, format));
  return f;
}

}  // namespace

std::vector<std::string> segment_names(const ActivityTable& a, const std::vector<int>& segment, int k,
                                       const std::vector<std::string>& rfm_segment) {
  const size_t C = a.categories.size();
  std::vector<std::vector<double>> cat(size_t(k), std::vector<double>(C, 0.0));
  std::vector<double> all(C, 0.0), seg_total(size_t(k), 0.0);
  std::vector<std::map<std::string, int64_t>> rfm(static_cast<size_t>(k));
  std::vector<int64_t> members(size_t(k), 0);
  double total = 0;
  for (size_t i = 0; i < a.users.size(); ++i) {
    const int s = segment[i];
    for (const auto& [c, n] : a.users[i].category_events) {
      if (c < 0 || size_t(c) >= C) continue;
      all[size_t(c)] += double(n);
      total += double(n);
      if (s >= 0) {
        cat[size_t(s)][size_t(c)] += double(n);
        seg_total[size_t(s)] += double(n);
      }
    }
    if (s >= 0) {
      ++members[size_t(s)];
      ++rfm[size_t(s)][rfm_segment[i]];
    }
  }
  std::vector<std::string> names(static_cast<size_t>(k));
  std::set<std::string> used;
  for (int s = 0; s < k; ++s) {
    const size_t si = size_t(s);
    if (members[si] == 0 || seg_total[si] <= 0) {
      names[si] = fmt::format("segment {}", s);
      continue;
    }
    std::vector<std::pair<double, size_t>> ranked;  // (-lift, category)
    for (size_t c = 0; c < C; ++c) {
      const double share = cat[si][c] / seg_total[si];
      // lift = share in the segment / share overall, as one quotient of counts (exact ties tie)
      if (share >= 0.10 && all[c] > 0) ranked.push_back({-(cat[si][c] * total) / (seg_total[si] * all[c]), c});
    }
    if (ranked.empty()) {
      size_t best = 0;
      for (size_t c = 1; c < C; ++c)
        if (cat[si][c] > cat[si][best]) best = c;
      ranked.push_back({0.0, best});
    }
    std::sort(ranked.begin(), ranked.end());
    std::string name = a.categories[ranked[0].second];
    if (ranked.size() > 1) name += " & " + a.categories[ranked[1].second];
    // Most common RFM name; ties: the first in kRfmNames order.
    std::string best_rfm;
    int64_t best_n = -1;
    for (const char* r : kRfmNames) {
      auto it = rfm[si].find(r);
      const int64_t cnt = it == rfm[si].end() ? 0 : it->second;
      if (cnt > best_n) {
        best_n = cnt;
        best_rfm = r;
      }
    }
    name += " \xC2\xB7 " + best_rfm;  // U+00B7 middle dot
    if (used.count(name)) name += fmt::format(" (segment {})", s);
    used.insert(name);
    names[si] = name;
  }
  return names;
}

void attach_segments(Table& t, const ActivityTable& a, const std::string& segments_path) {
  const auto path = resolve(segments_path, "segments.h5");
  h5::H f = open_format(path, "portrait-segments", "tags.segments");
  const auto ids = h5::read_strings(f, "user_id");
  const auto seg = h5::read_i32(f, "segment");
  if (ids.size() != seg.size())
    throw DataError("tags.segments " + path.string() + ": /user_id and /segment differ in length (corrupt file?)");
  const int k = h5::has_attr(f, "k") ? int(h5::attr_i64(f, "k")) : 0;
  std::unordered_map<std::string, int> of;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (seg[i] < 0 || seg[i] >= std::max(k, 1))
      throw DataError(fmt::format("tags.segments {}: row {} has segment {} outside [0, k={})", path.string(), i,
                                  seg[i], k));
    of.emplace(ids[i], seg[i]);
  }
  const auto& uid = t.at("user_id").s;
  std::vector<int> s(uid.size(), -1);
  size_t matched = 0;
  for (size_t i = 0; i < uid.size(); ++i) {
    auto it = of.find(uid[i]);
    if (it != of.end()) {
      s[i] = it->second;
      ++matched;
    }
  }
  if (matched == 0 && !uid.empty())
    throw DataError("tags.segments " + path.string() +
                    ": none of its users is in the shards (another prep's pseudonyms?)");
  const auto names = segment_names(a, s, k, t.at("rfm_segment").s);
  auto& col = t.add("segment", Column::Kind::kInt, "segment id from the segments file (-1 = not in it)").i;
  auto& nm = t.add("segment_name", Column::Kind::kString,
                   "automatic name: the segment's top-lift categories and most common RFM name").s;
  for (size_t i = 0; i < uid.size(); ++i) {
    col.push_back(s[i]);
    nm.push_back(s[i] >= 0 ? names[size_t(s[i])] : "");
  }
  t.attrs["segments_file"] = path.string();
}

void attach_scores(Table& t, const std::string& scores_path) {
  const auto path = resolve(scores_path, "scores.h5");
  h5::H f = open_format(path, "portrait-scores", "tags.scores");
  if (!h5::exists(f, "probability"))
    throw DataError("tags.scores " + path.string() +
                    ": no /probability (scored with score.write_probabilities=false); re-run portrait score");
  const auto ids = h5::read_strings(f, "user_id");
  const auto target = h5::read_strings(f, "target");
  std::vector<hsize_t> dims;
  const auto prob = h5::read_float(f, "probability", &dims);
  const size_t C = target.size();
  if (dims.size() != 2 || dims[0] != ids.size() || dims[1] != C || C == 0)
    throw DataError("tags.scores " + path.string() + ": /probability is not [users, targets] (corrupt file?)");
  // The heads follow the category vocabulary, whose first two entries are the padding and
  // out-of-vocabulary tokens: never a category to predict.
  std::vector<char> real(C, 1);
  for (size_t c = 0; c < C; ++c) real[c] = target[c] != "<pad>" && target[c] != "<oov>";
  std::unordered_map<std::string, size_t> of;
  for (size_t i = 0; i < ids.size(); ++i) of.emplace(ids[i], i);
  const auto& uid = t.at("user_id").s;
  auto& nc = t.add("next_category", Column::Kind::kString,
                   "purchase head with the highest probability (\"\" = not in the scores file)").s;
  auto& np = t.add("next_category_probability", Column::Kind::kFloat,
                   "that head's purchase probability as scored (-1 = not in the scores file)").f;
  for (const auto& u : uid) {
    auto it = of.find(u);
    if (it == of.end()) {
      nc.push_back("");
      np.push_back(-1.0);
      continue;
    }
    const float* row = prob.data() + it->second * C;
    size_t best = C;
    for (size_t c = 0; c < C; ++c)
      if (real[c] && (best == C || row[c] > row[best])) best = c;
    nc.push_back(best < C ? target[best] : "");
    np.push_back(best < C ? double(row[best]) : -1.0);
  }
  t.attrs["scores_file"] = path.string();
}

}  // namespace portrait::tags
