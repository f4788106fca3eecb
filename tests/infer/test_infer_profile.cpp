// profile: k-anonymity suppression, JSON/CSV outputs, and the HTML report rendered in
// headless Chromium (label slow: the browser and matplotlib take seconds).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fixture.h"
#include "infer/embed.h"
#include "infer/h5.h"
#include "infer/profile.h"
#include "infer/score.h"
#include "infer/segment.h"

namespace portrait::infer {
namespace {

using testing::fixture;
using testing::run_python;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Outputs {
  fs::path dir, emb, seg, scores, profile;
  std::vector<int64_t> sizes;
  int64_t threshold = 0;
  ProfileSummary sum;
};

const Outputs& outputs() {
  static Outputs o = [] {
    Outputs r;
    r.dir = fixture().root / "profile_run";
    EmbedParams ep;
    ep.model_dir = fixture().model.string();
    ep.shards = fixture().shards.string();
    r.emb = r.dir / "embeddings.h5";
    ep.output = r.emb.string();
    ep.progress = false;
    run_embed(ep);
    SegmentParams sp;
    sp.embeddings = r.emb.string();
    r.seg = r.dir / "segments.h5";
    sp.output = r.seg.string();
    sp.k = 5;
    r.sizes = run_segment(sp).sizes;
    ScoreParams cp;
    cp.embeddings = r.emb.string();
    r.scores = r.dir / "scores";
    cp.output_dir = r.scores.string();
    run_score(cp);
    {
      std::ofstream m(r.dir / "metrics.jsonl");
      for (int s = 0; s <= 200; s += 10)
        m << nlohmann::json{{"step", s}, {"loss", 3.0 / (1 + s / 50.0)}, {"lr", 1e-3}}.dump() << "\n";
    }
    ProfileParams pp;
    pp.embeddings = r.emb.string();
    pp.segments = r.seg.string();
    pp.scores = r.scores.string();
    pp.metrics = (r.dir / "metrics.jsonl").string();
    r.profile = r.dir / "profile";
    pp.output_dir = r.profile.string();
    pp.min_term_count = 1;
    // Publish only the largest segment(s): everything smaller is below the threshold.
    r.threshold = *std::max_element(r.sizes.begin(), r.sizes.end());
    pp.min_segment_size = r.threshold;
    r.sum = run_profile(pp);
    return r;
  }();
  return o;
}

TEST(Profile, SmallSegmentsAreSuppressed) {
  const auto& o = outputs();
  int expect_suppressed = 0;
  for (auto n : o.sizes) expect_suppressed += n < o.threshold;
  ASSERT_GT(expect_suppressed, 0);
  EXPECT_EQ(o.sum.suppressed, expect_suppressed);
  EXPECT_EQ(o.sum.published, int(o.sizes.size()) - expect_suppressed);
  auto j = nlohmann::json::parse(slurp(o.profile / "profile.json"));
  EXPECT_EQ(j["format"], "portrait-profile");
  h5::H sf = h5::open_file(o.seg);
  auto seg = h5::read_i32(sf, "segment");
  auto ids = h5::read_strings(sf, "user_id");
  std::string csv = slurp(o.profile / "profile.csv"), html = slurp(o.profile / "report.html");
  for (auto& s : j["segments"]) {
    int id = s["segment"];
    bool small = o.sizes[size_t(id)] < o.threshold;
    EXPECT_EQ(s["suppressed"].get<bool>(), small);
    if (small) {
      EXPECT_FALSE(s.contains("size"));
      EXPECT_FALSE(s.contains("representatives"));
      EXPECT_FALSE(s.contains("top_categories"));
      // No member of a suppressed segment is named anywhere.
      for (size_t i = 0; i < seg.size(); ++i)
        if (seg[i] == id) {
          ASSERT_EQ(csv.find(ids[i].substr(0, 16)), std::string::npos);
          ASSERT_EQ(html.find(ids[i].substr(0, 16)), std::string::npos);
        }
    } else {
      EXPECT_EQ(s["size"].get<int64_t>(), o.sizes[size_t(id)]);
      EXPECT_EQ(s["representatives"].size(), 5u);
      EXPECT_FALSE(s["top_categories"].empty());
      EXPECT_GT(s["frequency"]["mean"].get<double>(), 0);
      // Every real category head; the <pad> and <oov> heads are left out of portraits.
    EXPECT_EQ(s["mean_probability"].size(), size_t(fixture().cfg.n_targets) - 2);
    EXPECT_FALSE(s["mean_probability"].contains("<pad>"));
    }
  }
  // CSV: header + one line per published segment.
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + o.sum.published);
}

// Weak spot: a failing report script was reported as "exit 256" (a raw wait status).
TEST(Profile, AFailingReportScriptIsReportedByItsExitStatus) {
  const auto& o = outputs();
  ProfileParams pp;
  pp.embeddings = o.emb.string();
  pp.segments = o.seg.string();
  pp.scores = o.scores.string();
  pp.output_dir = (o.dir / "profile_failing_script").string();
  pp.min_term_count = 1;
  pp.min_segment_size = o.threshold;
  const fs::path script = o.dir / "fails.py";
  std::ofstream(script) << "import sys\nprint('report: cannot draw')\nsys.exit(3)\n";
  pp.script = script.string();
  try {
    run_profile(pp);
    FAIL() << "a failing report script was not an error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("exited with status 3"), std::string::npos) << m;
    EXPECT_EQ(m.find("exit 768"), std::string::npos) << m;
    EXPECT_NE(m.find("cannot draw"), std::string::npos) << m;
  }
}

TEST(Profile, HtmlReportRendersInHeadlessChromium) {
  const auto& o = outputs();
  fs::path html = o.profile / "report.html";
  ASSERT_TRUE(fs::exists(html));
  fs::path dom = o.dir / "dom.html", shot = o.dir / "shot.png";
  std::string flags = " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage"
                      " --user-data-dir=" + (o.dir / "chromium-profile").string() + " ";
  int rc = std::system(("chromium" + flags + "--dump-dom 'file://" + html.string() + "' > '" + dom.string() +
                        "' 2>/dev/null").c_str());
  ASSERT_EQ(rc, 0);
  std::string d = slurp(dom);
  // Manual scan: std::regex recurses per character and overflows on 100 kB data URIs.
  const std::string tag = "src=\"data:image/png;base64,";
  int n = 0;
  for (size_t pos = d.find("<img"); pos != std::string::npos; pos = d.find("<img", pos + 1)) {
    size_t src = d.find(tag, pos);
    ASSERT_NE(src, std::string::npos);
    size_t end = d.find('"', src + tag.size());
    EXPECT_GT(end - (src + tag.size()), 5000u) << "chart " << n;
    ++n;
  }
  EXPECT_EQ(n, 4) << "sizes, PCA, propensity, training";
  for (auto* id : {"chart-sizes", "chart-pca", "chart-propensity", "chart-training"})
    EXPECT_NE(d.find(id), std::string::npos) << id;
  rc = std::system(("chromium" + flags + "--hide-scrollbars --window-size=1200,2000 --screenshot='" +
                    shot.string() + "' 'file://" + html.string() + "' > /dev/null 2>&1").c_str());
  ASSERT_EQ(rc, 0);
  ASSERT_TRUE(fs::exists(shot));
  auto [prc, text] = run_python(
      "import matplotlib.image as mi, numpy as np\n"
      "a = mi.imread('" + shot.string() + "')[..., :3]\n"
      "nonwhite = (a.min(axis=2) < 0.9).mean()\n"
      "print('nonwhite', nonwhite, 'colours', len(np.unique((a * 255).astype(int).reshape(-1, 3), axis=0)))\n"
      "assert a.shape[0] >= 1000 and nonwhite > 0.02\n"
      "assert len(np.unique((a * 255).astype(int).reshape(-1, 3), axis=0)) > 50\n",
      o.dir);
  EXPECT_EQ(prc, 0) << text;
}

}  // namespace
}  // namespace portrait::infer
