// `portrait campaign plan | evaluate | simulate` through the real binary: help and dispatch,
// a simulated campaign evaluated end to end, a plan from a CSV and from a scores.h5, and the
// refusal to re-draw a planned campaign.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/shell.h"
#include "core/fs.h"

namespace portrait {
namespace {

namespace fs = std::filesystem;
using Result = testing::ShellResult;

const std::string kEnv = "PORTRAIT_HASH_KEY=campaign-cli-test-key-0123456789 ";

Result run(const std::string& args) {
  return testing::run_shell(kEnv + std::string(PORTRAIT_BINARY_DIR) + "/bin/portrait " + args);
}

fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("portrait_campaign_cli_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(CampaignCli, HelpAndDispatch) {
  Result r = run("campaign --help");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* s : {"plan", "evaluate", "simulate"}) EXPECT_NE(r.out.find(s), std::string::npos) << r.out;
  EXPECT_EQ(run("campaign").code, 2);
  for (const char* s : {"plan", "evaluate", "simulate"}) {
    Result h = run(std::string("campaign ") + s + " --help");
    EXPECT_EQ(h.code, 0) << h.out;
    EXPECT_NE(h.out.find(std::string("Usage: portrait campaign ") + s), std::string::npos) << h.out;
    EXPECT_NE(h.out.find(std::string("campaign/") + s), std::string::npos) << h.out;
  }
  Result bad = run("campaign evalute");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("Did you mean 'evaluate'?"), std::string::npos) << bad.out;
  Result top = run("--help");
  EXPECT_NE(top.out.find("campaign"), std::string::npos) << top.out;
  Result cfg = run("config campaign plan campaign.id=spring campaign.plan.budget_users=10");
  EXPECT_EQ(cfg.code, 0) << cfg.out;
  EXPECT_NE(cfg.out.find("budget_users: 10"), std::string::npos) << cfg.out;
  Result typo = run("config campaign plan campaign.plan.budget_user=10");
  EXPECT_EQ(typo.code, 2) << typo.out;
  EXPECT_NE(typo.out.find("Did you mean 'campaign.plan.budget_users'?"), std::string::npos) << typo.out;
}

TEST(CampaignCli, SimulateEvaluateAndPlanWithoutRedrawing) {
  const fs::path d = tmpdir("e2e");
  Result sim = run("campaign simulate hydra.run.dir=" + (d / "sim").string() +
                   " campaign.simulate.users=6000 campaign.simulate.seed=5");
  ASSERT_EQ(sim.code, 0) << sim.out;
  for (const char* f : {"users.csv", "events.csv", "truth.csv", "truth.json", "campaign/assignment.csv",
                        "campaign/activation.csv", "campaign/campaign.json"})
    EXPECT_TRUE(fs::exists(d / "sim" / f)) << f;
  Result ev = run("campaign evaluate campaign.id=synthetic campaign.dir=" + (d / "sim/campaign").string() +
                  " campaign.evaluate.input=[" + (d / "sim/events.csv").string() + "] hydra.run.dir=" +
                  (d / "eval").string() + " campaign.evaluate.bootstrap=50 campaign.evaluate.progress=false");
  ASSERT_EQ(ev.code, 0) << ev.out;
  EXPECT_NE(ev.out.find("campaign evaluate: 'synthetic'"), std::string::npos) << ev.out;
  for (const char* f : {"evaluation.json", "arms.csv", "lift.csv", "uplift_deciles.csv", "qini.csv", "uplift_at_k.csv",
                        "quarantine.jsonl", ".hydra/config.yaml"})
    EXPECT_TRUE(fs::exists(d / "eval" / f)) << f;
  auto truth = nlohmann::json::parse(read_file(d / "sim/truth.json"));
  auto j = nlohmann::json::parse(read_file(d / "eval/evaluation.json"));
  EXPECT_EQ(j["quarantine"]["not_in_assignment"], truth["expected_quarantine"]["not_in_assignment"]);
  EXPECT_EQ(j["arms"]["treatment"]["users"].get<int64_t>() + j["arms"]["control"]["users"].get<int64_t>(),
            truth["audience"].get<int64_t>());
  EXPECT_TRUE(j["overall"]["conversion"].contains("bootstrap_ci"));
  // campaign.dir alone (no campaign.id) is enough; the wrong id for the directory is refused.
  Result by_dir = run("campaign evaluate campaign.dir=" + (d / "sim/campaign").string() + " campaign.evaluate.input=[" +
                      (d / "sim/events.csv").string() + "] hydra.run.dir=" + (d / "eval3").string());
  EXPECT_EQ(by_dir.code, 0) << by_dir.out;
  Result wrong = run("campaign evaluate campaign.id=other campaign.dir=" + (d / "sim/campaign").string() +
                     " campaign.evaluate.input=[" + (d / "sim/events.csv").string() + "] hydra.run.dir=" +
                     (d / "eval2").string());
  EXPECT_EQ(wrong.code, 2) << wrong.out;

  // Plan a new campaign from the simulated scores (a CSV), twice, then with another seed.
  const std::string plan = "campaign plan campaign.id=c2 campaign.dir=" + (d / "c2").string() +
                           " campaign.start=2024-07-01 campaign.plan.input=" + (d / "sim/users.csv").string() +
                           " campaign.plan.budget_users=900 hydra.run.dir=" + (d / "plan").string();
  Result p1 = run(plan);
  ASSERT_EQ(p1.code, 0) << p1.out;
  EXPECT_NE(p1.out.find("1000 users (900 treatment, 100 control)"), std::string::npos) << p1.out;
  const std::string a1 = read_file(d / "c2/assignment.csv");
  Result p2 = run(plan);
  EXPECT_EQ(p2.code, 0) << p2.out;
  EXPECT_NE(p2.out.find("identical"), std::string::npos) << p2.out;
  Result p3 = run(plan + " campaign.seed=2");
  EXPECT_EQ(p3.code, 1) << p3.out;
  EXPECT_NE(p3.out.find("never re-drawn"), std::string::npos) << p3.out;
  EXPECT_EQ(read_file(d / "c2/assignment.csv"), a1);
}

TEST(CampaignCli, PlansFromAScoresFileAndASegmentsFile) {
  const fs::path d = tmpdir("h5");
  const std::string py = std::string(PORTRAIT_PYTHON) + " -c \"import h5py\"";
  if (testing::run_shell(py).code != 0) GTEST_SKIP() << "no h5py in " << PORTRAIT_PYTHON;
  // A minimal `portrait score` and `portrait segment` output, written as h5py would read them.
  std::ofstream(d / "make.py") << R"(import h5py, numpy as np, sys
d = sys.argv[1]
ids = np.array([('%032x' % (i * 7919)).encode() for i in range(400)], dtype='S32')
utf8 = h5py.string_dtype('utf-8', 32)   # portrait writes fixed-length UTF-8 ids
with h5py.File(d + '/scores.h5', 'w') as f:
    f.attrs['format'] = 'portrait-scores'
    f['user_id'] = ids.astype(utf8)
    f['probability'] = np.stack([np.linspace(0, 1, 400), np.linspace(1, 0, 400)], 1).astype('f4')
    f.create_dataset('target', data=['phones', 'books'], dtype=h5py.string_dtype())
with h5py.File(d + '/segments.h5', 'w') as f:
    f.attrs['format'] = 'portrait-segments'
    f['user_id'] = ids.astype(utf8)
    f['segment'] = (np.arange(400) % 3).astype('i4')
)";
  ASSERT_EQ(testing::run_shell(std::string(PORTRAIT_PYTHON) + " " + (d / "make.py").string() + " " + d.string()).code, 0);
  const std::string base = "campaign plan campaign.id=h5 campaign.start=2024-07-01 campaign.plan.input=" + d.string() +
                           " campaign.plan.segments_file=" + (d / "segments.h5").string() +
                           " campaign.plan.budget_users=90 hydra.run.dir=" + (d / "run").string();
  Result none = run(base + " campaign.dir=" + (d / "x").string());
  EXPECT_EQ(none.code, 2) << none.out;  // two heads: campaign.plan.target is needed
  EXPECT_NE(none.out.find("phones, books"), std::string::npos) << none.out;
  Result ok = run(base + " campaign.dir=" + (d / "c").string() + " campaign.plan.target=books");
  ASSERT_EQ(ok.code, 0) << ok.out;
  auto meta = nlohmann::json::parse(read_file(d / "c/campaign.json"));
  EXPECT_EQ(meta["score_name"], "p(books)");
  EXPECT_EQ(meta["audience"], 100);
  EXPECT_EQ(meta["strata"].size(), 30u);  // 3 segments x 10 deciles
  // top_score on "books" (falling with the row): the audience is the first 100 rows.
  const std::string a = read_file(d / "c/assignment.csv");
  auto id = [](int i) {
    char b[40];
    std::snprintf(b, sizeof b, "%032x", i * 7919);
    return std::string(b);
  };
  EXPECT_NE(a.find("\n" + id(0) + ","), std::string::npos);
  EXPECT_NE(a.find("\n" + id(99) + ","), std::string::npos);
  EXPECT_EQ(a.find("\n" + id(100) + ","), std::string::npos);
}

}  // namespace
}  // namespace portrait
