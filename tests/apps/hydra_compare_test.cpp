// Composition checked against real Hydra: tests/apps/hydra_compare/compare.py composes each
// case of cases.txt (Hydra's documented patterns, merge overrides, YAML 1.1 typing) with
// hydra-core and with `portrait config --resolve`, and reads both as PyYAML would.
#include <gtest/gtest.h>

#include <string>

#include "common/shell.h"

namespace portrait {
namespace {

TEST(HydraCompare, EveryCaseComposesAsHydraCoreComposesIt) {
  const std::string py = PORTRAIT_PYTHON;
  if (testing::run_shell(py + " -c 'import hydra, omegaconf'").code != 0)
    GTEST_SKIP() << "hydra-core is not installed in " << py << " (scripts/install_deps.sh installs it)";
  const std::string dir = std::string(PORTRAIT_SOURCE_DIR) + "/tests/apps/hydra_compare";
  auto r = testing::run_shell(py + " " + dir + "/compare.py " + PORTRAIT_BINARY_DIR + "/bin/portrait " + dir +
                              "/conf " + dir + "/cases.txt");
  std::printf("%s", r.out.c_str());
  EXPECT_EQ(r.code, 0) << r.out;
}

}  // namespace
}  // namespace portrait
