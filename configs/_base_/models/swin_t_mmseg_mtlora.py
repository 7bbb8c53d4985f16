# MTLoRA (Agiza et al., CVPR 2024; the official scale-lab/MTLoRA computation, r64 config):
# shared LoRA (rank 64, scale 4) on qkv/proj/fc1/fc2 of every block, task LoRA (rank 4) on
# proj/fc1/fc2 of the last block of every stage, each task's features through the stage's
# patch merging. Trains LoRA + patch embedding, norms, relative position tables and the
# patch-merging reductions (the official defaults); docs/methods/mtlora.md.
#
# The comparisons' heads: one LightMultiScaleHead per task, here on MTLoRA's post-merge
# pyramid (192/384/768/768 channels at strides 8/16/32/32). The whole official model (its
# per-task downsamplers + HRNet heads, drop path 0.2) is swin_t_mmseg_mtlora_official.py.
_base_ = ['./swin_t_mmseg.py']
model = dict(
    backbone=dict(
        peft=dict(
            type='MTLoRA',
            rank=64,
            task_rank=4,
            shared_scale=4.0,
            task_scale=4.0,
            mode='matrix',
            lora_dropout=0.05)))
