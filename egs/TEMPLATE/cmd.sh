# Job runners (Kaldi convention): "<runner> [opts] [JOB=1:N] <log> <command>".
# Sourced by every recipe's run.sh / stage script; pick one block.

# ---- this machine
export train_cmd="utils/run.pl"
export cuda_cmd="utils/run.pl"
export decode_cmd="utils/run.pl"
# Number of GPUs for training (0 = CPU). With > 1, stage 4 launches
# "torchrun --nproc_per_node ${ngpu} -m parastyle.bin.train ..." (DDP, NCCL).
export ngpu=${ngpu:-0}          # keeps a value given on the command line (./run.sh --ngpu 4)

# ---- Slurm (utils/slurm.pl submits with sbatch --wait and checks every task's exit code)
# export train_cmd="utils/slurm.pl --mem 8G --num-threads 4 --time 24:00:00"
# export cuda_cmd="utils/slurm.pl --gpu 1 --mem 32G --num-threads 8 --time 48:00:00"
# export decode_cmd="utils/slurm.pl --mem 4G --num-threads 2"

# ---- Several GPU nodes with srun: one torchrun per node, rendezvous on the first node.
# srun --nodes 2 --ntasks-per-node 1 --gpus-per-node 4 --cpus-per-task 16 bash -c '
#   torchrun --nnodes "$SLURM_NNODES" --nproc_per_node 4 --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d \
#     --rdzv_endpoint "$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):29400" \
#     -m parastyle.bin.train --config conf/train_ce.yaml --train_data data/train --valid_data data/dev \
#     --lang_dir data/lang --exp exp/ce'
# The exp dir must be on a file system shared by the nodes (checkpoints are written by rank 0
# and read by every rank on resume).
