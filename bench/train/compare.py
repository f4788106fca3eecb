#!/usr/bin/env python3
"""Training throughput of `portrait train` against its plain-PyTorch twin, same shapes, same run.

One command for issue 4's GPU item (model=base in bf16: tokens/s, MFU, ratio >= 1.3x the Python
version), and it runs on CPU at small scale too:

  1. `portrait synth` + `portrait prep` into WORK (skipped when WORK already holds them), with
     sequences as long as the model's max_events so the benchmark is not padding-bound;
  2. `portrait train` on those shards with evaluation and intermediate checkpoints off; its
     metrics.jsonl gives tokens/s (and MFU on CUDA) per `log_every` interval;
  3. bench/train/torch_baseline.py with --lengths-from WORK/shards: the same model file
     (configs/model/<preset>.yaml), the same padded widths, vocabularies, per-user lengths,
     batch size and loss sizes, random ids.
Both figures are medians over the steady-state intervals (the first third is warm-up: CUDA
context, allocator, autotuning). The baseline runs after the trainer in the same process tree
on the same device, never concurrently.

  .venv/bin/python bench/train/compare.py --preset tiny --device cpu --threads 2
  python3 bench/train/compare.py --preset base --device cuda --batch-size 64 --steps 120 \\
      --portrait build-gpu/bin/portrait --work /tmp/bench_train
Prints one JSON line with both sides and "ratio" = portrait tokens/s / python tokens/s.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_baseline import load_model_yaml  # noqa: E402  (same model-file reader)


def run(cmd, env=None, log=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log:
        with open(log, "w") as f:
            f.write(p.stdout)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:])
        raise SystemExit(f"compare.py: {' '.join(cmd[:2])} failed with exit code {p.returncode}"
                         + (f"; full output in {log}" if log else ""))
    return p.stdout, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=("tiny", "small", "base"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps of each side")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads on CPU (0 = torch default)")
    ap.add_argument("--users", type=int, default=4000, help="synthetic users")
    ap.add_argument("--sessions-per-day", type=float, default=0.0,
                    help="synth.sessions_per_day (0 = sized so users fill max_events)")
    ap.add_argument("--work", default="/tmp/portrait_bench_train")
    ap.add_argument("--portrait", default=os.path.join(ROOT, "build", "bin", "portrait"))
    ap.add_argument("--python", default=sys.executable, help="python with torch for the baseline")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="train.peak_tflops for MFU")
    a = ap.parse_args()

    m = load_model_yaml(a.preset)
    L, T = m["max_events"], m["max_text"]
    os.makedirs(a.work, exist_ok=True)
    raw, shards = os.path.join(a.work, "raw"), os.path.join(a.work, "shards")
    env = dict(os.environ)
    env.setdefault("PORTRAIT_HASH_KEY", "portrait-bench-train-key-0123456789")
    # The default generator gives ~0.15 sessions/day x 120 days: ~100 events per user. Long
    # models need longer histories, or the benchmark measures padding.
    spd = a.sessions_per_day or max(0.15, 0.15 * L / 64)
    if not os.path.exists(os.path.join(raw, "events_00000.csv")):
        run([a.portrait, "synth", f"synth.output_dir={raw}", f"synth.users={a.users}", "synth.items=2000",
             f"synth.sessions_per_day={spd}", "synth.fault_fraction=0", "synth.bot_users=0",
             f"hydra.run.dir={os.path.join(a.work, 'synth_run')}"], env, os.path.join(a.work, "synth.log"))
    if not os.path.exists(os.path.join(shards, "prep_summary.json")):
        run([a.portrait, "prep", f"prep.input=[{os.path.join(raw, 'events_00000.csv')}]",
             f"prep.output_dir={shards}", f"prep.seq_len={L}", f"prep.text_len={T}", "prep.progress=false",
             "prep.tokenizer.vocab_size=4000", f"hydra.run.dir={os.path.join(a.work, 'prep_run')}"],
            env, os.path.join(a.work, "prep.log"))

    run_dir = os.path.join(a.work, f"train_{a.preset}_{a.device}")
    log_every = max(1, a.steps // 20)
    cmd = [a.portrait, "train", f"shards={shards}", f"model={a.preset}", f"train.steps={a.steps}",
           f"train.batch_size={a.batch_size}", "train.eval_every=0", "train.final_eval_splits=[]",
           "train.ckpt_every=0", "train.progress=false", f"train.log_every={log_every}",
           f"train.device={a.device}", f"train.threads={a.threads}", f"train.peak_tflops={a.peak_tflops}",
           "train.warmup_steps=1", f"hydra.run.dir={run_dir}"]
    _, train_wall = run(cmd, env, os.path.join(a.work, "train.log"))
    recs = [json.loads(x) for x in open(os.path.join(run_dir, "metrics.jsonl")) if '"tokens_per_s"' in x]
    steady = recs[len(recs) // 3:] or recs
    ours = {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
            "users_per_s": statistics.median(r["users_per_s"] for r in steady),
            "intervals": len(steady), "wall_s": train_wall}
    if any("mfu" in r for r in steady):
        ours["mfu"] = statistics.median(r["mfu"] for r in steady if "mfu" in r)

    bcmd = [a.python, os.path.join(ROOT, "bench", "train", "torch_baseline.py"), "--preset", a.preset,
            "--device", a.device, "--lengths-from", shards, "--batch-size", str(a.batch_size),
            "--steps", str(a.steps), "--warmup", str(max(3, a.steps // 3))]
    if a.threads:
        bcmd += ["--threads", str(a.threads)]
    out, _ = run(bcmd, env, os.path.join(a.work, "baseline.log"))
    theirs = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({"preset": a.preset, "device": a.device, "batch_size": a.batch_size, "steps": a.steps,
                      "L": L, "T": T, "portrait": ours, "python": theirs,
                      "ratio": ours["tokens_per_s"] / theirs["tokens_per_s"]}))


if __name__ == "__main__":
    main()
