#!/bin/bash
# Does the fast discriminator (gp_every 16, no residual block per stage; 2.62x the plain fp32 loop without bf16,
# bench/bench_train.py --no-bf16-levers) cost image quality? Two 1,000-step fine-tunes of the shipped model side by
# side, bf16 off, differing only in those two settings, then the same eval for both. Results: bench/results/train.md.
#
#   bash bench/fast_d_quality.sh DATA OUT [FAST_SETTINGS] [ARMS]
#       DATA: charforge data build --creator builtin --n 20000 --size 64 --seed 0
#       FAST_SETTINGS: the fast arm's settings (default "gp_every=16 d_blocks=0", session 9's pair)
#       ARMS: which arms to run (default "base fast"; one arm per call lets two cores run them side by side)
#   SEED=N in the environment sets the training seed (default: the preset's, 0); use one OUT per seed.
set -euo pipefail
DATA=${1:?usage: bench/fast_d_quality.sh DATA OUT [FAST_SETTINGS] [ARMS]}
OUT=${2:?usage: bench/fast_d_quality.sh DATA OUT [FAST_SETTINGS] [ARMS]}
FAST=${3:-gp_every=16 d_blocks=0}
ARMS=${4:-base fast}
SEED_ARGS=()
[ -n "${SEED:-}" ] && SEED_ARGS=(--seed "$SEED")
export CHARFORGE_BF16=0 OMP_NUM_THREADS=1
COMMON=(--data "$DATA" --init-from default --steps 1000 --threads 1 --set cls_weight_g=2 --set lr=1e-4
  --set lr_decay_start=100000 --set ema_rampup=0 --set ema_half_life=20000 --set augment=degrade --set d_warmup=300
  --set ckpt_every=500 --set sample_every=500 --set eval_every=500 --set keep_ckpts=10 "${SEED_ARGS[@]}")
for arm in $ARMS; do
  extra=()
  if [ "$arm" = fast ]; then
    for kv in $FAST; do extra+=(--set "$kv"); done
  fi
  if [ ! -f "$OUT/runs/$arm/checkpoints/generator-0001000.safetensors" ]; then
    resume=()
    [ -d "$OUT/runs/$arm" ] && resume=(--resume)   # a stopped run continues exactly
    charforge train "${COMMON[@]}" "${extra[@]}" --out "$OUT/runs/$arm" "${resume[@]}"
  fi
  charforge eval --model "$OUT/runs/$arm/checkpoints/generator-0001000.safetensors" --data "$DATA" \
    -o "$OUT/reports/$arm" --metrics fid_domain,fid_generic,precision,sharpness,diversity --runs 3 --threads 1
done
