"""
Where a container's CPU goes: the report of `call_bringup.cpu_profile` samples.

    CALL_CPU_PROFILE=/tmp/prof python bench/bench_bringup.py --vehicles 8 --modes grouped
    python bench/profile_report.py /tmp/prof/container-*.json [--top 25]

Each sample is the executor thread's CPU since the previous sample, charged to its full
stack. Categories, first rule that matches the stack:
  - rclpy serialisation: inside `Publisher.publish` (C conversion and the DDS write) or a
    message module's Python (`*_msgs/msg/_*.py`: constructors and field setters; a message
    built by the C++ take calls them too);
  - the node whose callback is on the stack (outermost `call_*` frame's module), split into
    torch (a `torch/` frame, or a torch op called from CALL code: C ops have no frame, so
    their time lands on the frame that called them), numpy and the rest;
  - executor: no CALL frame at all (the events executor's C++ dispatch, the take and the
    C side of deserialisation, the spin loop).
Other threads of the process (DDS, torch pool) come from /proc and are listed apart.
"""
import argparse
import collections
import json
import re
import sys

NODE_OF_MODULE = [
    ('call_perception', 'perception'), ('call_world_model', 'world model'),
    ('call_comm', 'comm/replica/verify'), ('call_planner', 'planner'),
]
PLUMBING = {('call_common', 'node_main'), ('call_common', 'batch_timer'),
            ('call_common', 'batching')}
CALL_FILE = re.compile(r'/(call_[a-z_]+)/\1/([a-z_]+)\.py$')


def call_frame(filename: str):
    """(package, module) of a CALL source file, else None."""
    match = CALL_FILE.search(filename)
    return (match.group(1), match.group(2)) if match else None


def classify(stack: list) -> tuple:
    """(category, detail) of one sampled stack (outermost frame first)."""
    files = [f for f, _ in stack]
    if any(f.endswith('rclpy/publisher.py') and n == 'publish' for f, n in stack):
        return 'rclpy serialisation', 'publish'
    if re.search(r'_msgs/msg/_[a-z0-9_]+\.py$', files[-1]) or \
            re.search(r'/msg/_[a-z0-9_]+\.py$', files[-1]):
        inside = [call_frame(f) for f in files if call_frame(f)]
        return 'rclpy serialisation', 'message objects' + (' (node code)' if inside
                                                           else ' (take)')
    frames = [(call_frame(f), name) for f, name in stack if call_frame(f)]
    # plumbing: the container, the spin loop and the batch hand-off (charged to the node
    # code they call: a batched look-ahead is the planner's, a batched observe step the
    # world model's)
    frames = [(cf, name) for cf, name in frames
              if cf[0] != 'call_bringup' and cf not in PLUMBING]
    if not frames:
        return 'executor', 'spin / C++ dispatch / take'
    package, module = frames[0][0]
    category = dict(NODE_OF_MODULE).get(package, package)
    if module.endswith('_node') and package in dict(NODE_OF_MODULE):
        category = dict(NODE_OF_MODULE)[package]
    top = files[-1]
    if '/torch/' in top:
        kind = 'torch'
    elif '/numpy/' in top:
        kind = 'numpy'
    elif '/rclpy/' in top:
        kind = 'rclpy other'
    elif call_frame(top):
        kind = f'{call_frame(top)[0]}.{call_frame(top)[1]}:{stack[-1][1]}'
    else:
        kind = 'other python'
    return category, kind


def main() -> int:
    """Print the category table and the top stacks' innermost CALL functions."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('files', nargs='+')
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('--ticks', type=float, default=0.0,
                        help='ticks the profile covered: also print ms per tick')
    parser.add_argument('--per-vehicle-tick', action='store_true',
                        help='also print ms per vehicle-tick (the count of perception '
                             'odometry callbacks: one per vehicle and step) and the '
                             'accounts summed over the vehicles')
    args = parser.parse_args()
    categories: collections.Counter = collections.Counter()
    details: collections.Counter = collections.Counter()
    functions: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    main_cpu = executor_cpu = 0.0
    accounts: collections.Counter = collections.Counter()
    publishes: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    batches: collections.Counter = collections.Counter()    # (batcher, batches / deferrals)
    for path in args.files:
        with open(path, encoding='utf-8') as stream:
            data = json.load(stream)
        for row in data.get('batchers', []):     # profiles since the thirteenth pass
            batches[(row['batcher'], 'batches')] += row['batches']
            batches[(row['batcher'], 'deferred')] += row['deferrals']
        for stack, cpu in data['stacks']:
            category, detail = classify(stack)
            categories[category] += cpu
            details[(category, detail)] += cpu
            main_cpu += cpu
            inner = [(f, n) for f, n in stack if call_frame(f)]
            if inner:
                cf = call_frame(inner[-1][0])
                functions[f'{cf[0]}.{cf[1]}:{inner[-1][1]}'] += cpu
        executor_cpu += data.get('executor_thread_cpu_s', 0.0)
        for node, kind, topic, cpu, count in data.get('callbacks', []):
            if kind == 'gc':
                accounts[('python', 'cyclic garbage collector (inside callbacks)')] += cpu
                continue
            if kind == 'publish':
                publishes[(node, topic)] += cpu
                accounts[(node, 'publish (serialise + write)')] += cpu
            else:
                accounts[(node, f'{kind} {topic}')] += cpu
            calls[(node, kind, topic)] += count
        sampler = str(data.get('sampler_thread'))
        main_tid = str(data.get('target_native_id'))
        for key, cpu in data['threads_cpu_s'].items():
            tid, name = key.split(':', 1)
            if tid == sampler:
                threads['profiler (sampling thread)'] += cpu
            elif tid == main_tid:
                threads['executor thread (/proc)'] += cpu
            else:
                threads[f'other threads: {re.sub(r"[0-9]+$", "", name)}'] += cpu
    total = sum(threads.values())
    scale = 1e3 / args.ticks if args.ticks else None
    if args.per_vehicle_tick:
        vehicle_ticks = sum(count for (node, kind, topic), count in calls.items()
                            if node == 'perception' and topic.endswith('/odometry'))
        scale = 1e3 / max(1, vehicle_ticks)
        print(f'{vehicle_ticks} vehicle-ticks (perception odometry callbacks); '
              'last column: ms of thread CPU per vehicle-tick')
        # a container should run one batch per shared model and tick; more means its
        # vehicles' steps reached the flush in waves (docs/profile.md, twelfth pass)
        flushes: collections.Counter = collections.Counter()
        for (node, kind, topic), count in calls.items():
            if kind == 'timer' and topic in ('flush', 'flush_due'):
                flushes[node] += count
        print('batch flushes per vehicle-tick (x vehicles per container = per container-tick): '
              + ', '.join(f'{node} {count / max(1, vehicle_ticks):.3f}'
                          for node, count in sorted(flushes.items())))
        if batches:     # a deferred flush's timer fires twice: the batchers' own counts
            print('batches (deferred flushes) per vehicle-tick: ' + ', '.join(
                f'{name} {batches[(name, "batches")] / max(1, vehicle_ticks):.3f} '
                f'({batches[(name, "deferred")] / max(1, vehicle_ticks):.3f})'
                for name in sorted({name for name, _ in batches})))

    def line(label: str, cpu: float) -> str:
        ms = (f'{cpu * scale:9.2f}' if args.per_vehicle_tick else f'{cpu * scale:9.1f}') \
            if scale else ''
        return f'  {label:<58} {100 * cpu / total:6.1f} %{ms}'

    if accounts:
        in_callbacks = sum(cpu for (node, what), cpu in accounts.items()
                           if not what.startswith('publish') and node != 'python')
        print('exact accounts (thread CPU per callback; publish counted apart from the '
              'callback that called it):')
        by_node: collections.Counter = collections.Counter()
        for (node, what), cpu in accounts.items():
            if what.startswith('publish'):
                by_node[node + ': publish'] += cpu
            else:
                by_node[node] += cpu
        for (node, what), cpu in publishes.items():
            by_node[node] -= cpu      # the publish inside the node's callbacks
        by_node['executor: outside every callback (dispatch, take, deserialise)'] = \
            executor_cpu - in_callbacks
        for label, cpu in by_node.most_common():
            print(line(label, cpu))
        if args.per_vehicle_tick:
            summed: collections.Counter = collections.Counter()
            for (node, what), cpu in accounts.items():
                summed[(node, re.sub(r'/[a-z_]*[0-9]+/', '/R/', what))] += cpu
            print('  callbacks and publishers summed over the vehicles (R):')
            for (node, what), cpu in summed.most_common(args.top):
                print(line(f'    {node}: {what}', cpu))
        print('  callbacks and publishers, top ones:')
        for (node, what), cpu in accounts.most_common(args.top):
            print(line(f'    {node}: {what}', cpu))
    print(f'process CPU {total:.2f} s over {len(args.files)} container(s); '
          f'executor thread sampled {main_cpu:.2f} s')
    print("threads (share of the containers' CPU):")
    for label, cpu in threads.most_common():
        print(line(label, cpu))
    print("executor thread by category (share of the containers' CPU):")
    for category, cpu in categories.most_common():
        print(line(category, cpu))
        for (cat, detail), dcpu in details.most_common():
            if cat == category and dcpu / total >= 0.003:
                print(line('    ' + detail, dcpu))
    print(f'innermost CALL function, top {args.top}:')
    for function, cpu in functions.most_common(args.top):
        print(line(function, cpu))
    return 0


if __name__ == '__main__':
    sys.exit(main())
