#!/usr/bin/env bash
# The box head on a lent GPU (one `run` call of the device tool): the box-head networks, three seeds of each
# configuration, trained side by side from the packed data, plus tools/gpu_check.py on the shipped small networks.
#
#   python tools/pack_training_data.py --config config/finetune.yaml      # -> .traindata/ (git-excluded)
#   mkdir -p .traindata/pretrained && cp ../shared/pretrained/*.npz .traindata/pretrained/   # never committed
#   # device tool: carry [".traindata"], command: bash tools/gpu_train_box_heads.sh
#
# Configurations (the box head's CPU recipe otherwise: Adam 2e-3 -> 1e-4, batch 16, scale/aspect/shift augmentation):
#   small_frozen  the 15 % backbone frozen, the head trained for the whole budget (the CPU runs: 16,000 pairs)
#   small_tuned   the same with the backbone trained at 5 % of the head's rate
#   large_frozen  the full-width backbone frozen, the head trained (too slow on the 2-core CPU)
#   large_tuned   the same with the backbone trained at 5 % of the head's rate
#   small_modules small_frozen with the paper's SE branch, conv3/4/5 fusion and GAM trained too
# (CONFIGS="..." picks some; NO_GPU_CHECK=1 skips the check.)
# Each run gets MINUTES of wall clock (the learning rate follows the elapsed time, --lr-by-time). What comes back
# (the device tool returns at most 8 files of 16 MiB): one tar of the small runs and one per large run with weights.pt, train_log.csv and
# the run's log per seed, and the GPU check's figures.
set -u
OUT=${OUT:-out/gpu_train}
MINUTES=${MINUTES:-5}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c "import torch, cv2, onnxruntime, yaml; print('torch', torch.__version__, torch.cuda.get_device_name(0), \
'opencv', cv2.__version__, 'onnxruntime', onnxruntime.__version__)"

# the GPU code paths the CPU test suite skips: torch CUDA (FP16) against ONNX Runtime on the CPU, pyramid and head
[ -n "${NO_GPU_CHECK:-}" ] || ( for w in small small_box; do
    timeout 150 python3 tools/gpu_check.py --weights "weights/siam_$w.pt" --frames 60 --json "$OUT/gpu_check_$w.json" \
        --bench-json "$OUT/gpu_bench_$w.json"
  done ) > "$OUT/gpu_check.log" 2>&1 &

common=(--config config/finetune.yaml --device cuda --workers 1 --threads 1 --minutes "$MINUTES" --lr-by-time
        --distill-weight 0.5 --log-seconds 30
        --set 'training.data_dirs=[".traindata/data"]'
        --set model.use_se=false --set model.use_fusion=false --set model.use_gam=false --set model.box_head=true
        --set training.batch_size=16 --set training.pairs_per_epoch=20000 --set training.epochs=20
        --set training.optimizer=adam --set training.lr_start=0.002 --set training.lr_end=0.0001
        --set augment.search_scale=0.3 --set augment.search_aspect=0.25 --set augment.max_shift=48)
small=.traindata/pretrained/fdsiamfc_w015.npz
large=.traindata/pretrained/siamfc_alexnet_vid.npz
for seed in 1 2 3; do
  for cfg in ${CONFIGS:-small_frozen small_tuned large_frozen}; do
    case $cfg in
      small_frozen) init=$small; extra=(--set training.backbone_lr_scale=0) ;;
      small_tuned) init=$small; extra=(--set training.backbone_lr_scale=0.05) ;;
      large_frozen) init=$large; extra=(--set training.backbone_lr_scale=0) ;;
      large_tuned) init=$large; extra=(--set training.backbone_lr_scale=0.05) ;;
      small_modules) init=$small; extra=(--set training.backbone_lr_scale=0 --set model.use_se=true
                                         --set model.use_fusion=true --set model.use_gam=true) ;;
    esac
    run="$OUT/runs/${cfg}_s$seed"
    mkdir -p "$run"
    python3 -m siam_tracker_ros.training.trainer "${common[@]}" "${extra[@]}" --init-weights "$init" \
        --teacher "$init" --set training.seed=$seed --out "$run" > "$run/log.txt" 2>&1 &
  done
done
wait
cd "$OUT/runs"
for run in *; do tail -n 3 "$run/log.txt"; done
tar cf ../small.tar small_*/weights.pt small_*/train_log.csv small_*/log.txt
for run in large_*; do  # a full-width file is about 10 MiB: one tar each
  tar cf "../$run.tar" "$run/weights.pt" "$run/train_log.csv" "$run/log.txt"
done
cd - > /dev/null
tail -n 40 "$OUT/gpu_check.log"
(cd "$OUT" && tar cf gpu_check.tar gpu_check* gpu_bench* && rm -f gpu_check_* gpu_bench_* gpu_check.log)
rm -rf "$OUT/runs"
ls -la "$OUT"
