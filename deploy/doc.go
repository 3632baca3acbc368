// Package deploy holds no code: its directories hold the jobs that run
// `quantkit quantize --shard auto` on several machines at once and merge
// the parts, slurm/ for Slurm (an array job and a merge job after it) and
// kubernetes/ for Kubernetes (an Indexed Job and a merge Job), with
// README.md on how to run them. Its tests check those files: the
// manifests field by field, the scripts by running them against stand-ins
// for sbatch and quantkit.
package deploy
