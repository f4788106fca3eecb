"""Composes each case with real Hydra (hydra-core 1.3) and with `portrait config ... --cfg job
--resolve`, reads both as PyYAML would, and reports every case where they differ.

usage: compare.py PORTRAIT_BINARY CONFIG_DIR CASES_FILE
CASES_FILE: one case per line, "<config name> [override ...]" (shell words).
Exit status: the number of differing cases (0 = all agree)."""
import shlex
import subprocess
import sys

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf


def hydra_side(conf, name, overrides):
    try:
        with initialize_config_dir(config_dir=conf, version_base="1.3"):
            cfg = compose(name, overrides=overrides)
            return "ok", OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # the error text is compared loosely: both must fail
        return "error", str(e)


def portrait_side(binary, conf, name, overrides):
    p = subprocess.run([binary, "config", "-cp", conf, "-cn", name, "--resolve", *overrides],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "error", p.stderr.strip()
    return "ok", yaml.safe_load(p.stdout)


def main():
    binary, conf, cases = sys.argv[1:4]
    bad = 0
    n = 0
    for line in open(cases):
        if not line.strip() or line.startswith("#"):
            continue
        words = shlex.split(line)
        name, overrides = words[0], words[1:]
        n += 1
        h = hydra_side(conf, name, overrides)
        p = portrait_side(binary, conf, name, overrides)
        same = h[0] == p[0] and (h[0] == "error" or h[1] == p[1])
        if not same:
            bad += 1
            print(f"DIFFERS: {line.strip()}\n  hydra:    {h}\n  portrait: {p}")
    print(f"{n - bad} of {n} cases agree with hydra-core")
    sys.exit(min(bad, 100))


if __name__ == "__main__":
    main()
