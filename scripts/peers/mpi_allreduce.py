"""Times MPI_Allreduce (float32 sum) with mpi4py and numpy; one copy runs in every MPI rank.

Run it through scripts/peers/mpi-allreduce.sh, which starts the ranks with Open MPI over TCP only:

    mpirun -np 4 ... python mpi_allreduce.py --bytes 67108864 --iters 20 --warmup 5

Each rank fills its send buffer with (rank + 1) * (i % 1024) for element i, so every element of the
sum is (i % 1024) * n(n+1)/2: a whole number below 2**24, exact in float32, checked element by element
after the warm-up and after the timed iterations. Every timed iteration is a barrier, then one
out-of-place Allreduce timed with MPI.Wtime. A rank's figure is the mean of its iterations; the
reported time is the largest mean over the ranks (the slowest rank sets the pace of a collective).
Bandwidths follow nccl-tests: algbw = bytes / time, busbw = algbw * 2(n-1)/n for all-reduce, in GB/s
of 10**9 bytes. Rank 0 prints a summary and, last, one line:

    RESULT mpi_allreduce ranks=4 bytes=67108864 iters=20 time_us=... min_rank_time_us=...
    algbw_gbps=... busbw_gbps=... verified=yes

Exit status: 0 when the result verified, 1 when it did not, 2 for bad arguments.
"""

import argparse
import platform
import sys

import numpy as np
from mpi4py import MPI

FLOAT32_BYTES = 4
PATTERN_PERIOD = 1024


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=64 * 1024 * 1024,
                        help="buffer size in bytes, a multiple of 4 (default 64 MiB)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    args = parser.parse_args(argv)
    problems = []
    if args.bytes <= 0 or args.bytes % FLOAT32_BYTES != 0:
        problems.append(f"--bytes {args.bytes} must be a positive multiple of {FLOAT32_BYTES}")
    if args.iters <= 0:
        problems.append(f"--iters {args.iters} must be at least 1")
    if args.warmup < 0:
        problems.append(f"--warmup {args.warmup} must not be negative")
    return args, problems


def fill(sendbuf, rank):
    """Writes (rank + 1) * (i % PATTERN_PERIOD) into element i."""
    period = np.arange(PATTERN_PERIOD, dtype=np.float32) * np.float32(rank + 1)
    whole = len(sendbuf) // PATTERN_PERIOD
    sendbuf[: whole * PATTERN_PERIOD].reshape(whole, PATTERN_PERIOD)[:] = period
    rest = len(sendbuf) - whole * PATTERN_PERIOD
    sendbuf[whole * PATTERN_PERIOD:] = period[:rest]


def mismatches(recvbuf, ranks):
    """Number of elements that differ from the exact sum of every rank's pattern."""
    scale = np.float32(ranks * (ranks + 1) // 2)
    period = np.arange(PATTERN_PERIOD, dtype=np.float32) * scale
    whole = len(recvbuf) // PATTERN_PERIOD
    bad = int(np.count_nonzero(
        recvbuf[: whole * PATTERN_PERIOD].reshape(whole, PATTERN_PERIOD) != period))
    rest = len(recvbuf) - whole * PATTERN_PERIOD
    bad += int(np.count_nonzero(recvbuf[whole * PATTERN_PERIOD:] != period[:rest]))
    return bad


def main(argv):
    comm = MPI.COMM_WORLD
    rank, ranks = comm.Get_rank(), comm.Get_size()
    args, problems = parse_args(argv)
    if problems:
        if rank == 0:
            for problem in problems:
                print(f"mpi_allreduce.py: {problem}", file=sys.stderr)
        return 2

    count = args.bytes // FLOAT32_BYTES
    sendbuf = np.empty(count, dtype=np.float32)
    recvbuf = np.empty(count, dtype=np.float32)
    fill(sendbuf, rank)

    if rank == 0:
        print(f"python {platform.python_version()}, mpi4py {sys.modules['mpi4py'].__version__}, "
              f"numpy {np.__version__}")
        print(f"MPI library: {MPI.Get_library_version().rstrip(chr(0)).splitlines()[0].strip()}")
        print(f"ranks={ranks} bytes={args.bytes} float32 elements={count} "
              f"warmup={args.warmup} iters={args.iters}", flush=True)

    for _ in range(args.warmup):
        comm.Allreduce(sendbuf, recvbuf, op=MPI.SUM)
    bad_warm = mismatches(recvbuf, ranks) if args.warmup else 0

    times = []
    for _ in range(args.iters):
        recvbuf.fill(0)
        comm.Barrier()
        start = MPI.Wtime()
        comm.Allreduce(sendbuf, recvbuf, op=MPI.SUM)
        times.append(MPI.Wtime() - start)
    bad = bad_warm + mismatches(recvbuf, ranks)

    mean = sum(times) / len(times)
    means = comm.gather(mean, root=0)
    bad_total = comm.allreduce(bad, op=MPI.SUM)
    if rank != 0:
        return 0 if bad_total == 0 else 1

    slowest = max(means)
    fastest = min(means)
    algbw = args.bytes / slowest / 1e9
    busbw = algbw * 2 * (ranks - 1) / ranks
    per_rank = " ".join(f"{m * 1e6:.1f}" for m in means)
    print(f"mean time per rank (us): {per_rank}")
    if bad_total:
        print(f"mpi_allreduce.py: {bad_total} float32 elements differ from the exact sum",
              file=sys.stderr)
    print(f"RESULT mpi_allreduce ranks={ranks} bytes={args.bytes} iters={args.iters} "
          f"time_us={slowest * 1e6:.1f} min_rank_time_us={fastest * 1e6:.1f} "
          f"algbw_gbps={algbw:.3f} busbw_gbps={busbw:.3f} "
          f"verified={'yes' if bad_total == 0 else 'no'}", flush=True)
    return 0 if bad_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
