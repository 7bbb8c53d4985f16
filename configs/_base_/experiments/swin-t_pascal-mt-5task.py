# swin-t_pascal-mt.py on the 5-task PASCAL-Context data (semseg, human_parts, saliency,
# normals, edge); edge loss: balanced BCE (positive weight 0.95) x 50, the task's defaults.
_base_ = ['../models/swin_t_imagenet.py', '../datasets/pascal_context_mt_5task.py',
          '../schedules/mtlora_300e_pascal.py', '../default_runtime.py']
model = dict(tasks={{_base_.tasks}}, num_classes={{_base_.num_classes}})
