"""The training run: tasks, assembly of what trains, the loop, device, DDP, resume, evaluation."""
