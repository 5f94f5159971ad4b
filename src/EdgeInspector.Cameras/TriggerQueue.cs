using System.Threading.Channels;

namespace EdgeInspector.Cameras;

/// <summary>
/// Triggers a PLC sent, in order, each with the tag (the part id) that the frame it causes will carry.
/// A triggered source waits here before it captures: one trigger, one frame. Bounded: a trigger that
/// finds it full is refused, so that its caller answers it rather than letting it wait forever.
/// </summary>
public sealed class TriggerQueue(int capacity = TriggerQueue.DefaultCapacity)
{
    /// <summary>Triggers waiting for a frame, at most: far more than a camera has parts in front of it.</summary>
    public const int DefaultCapacity = 64;

    private readonly Channel<string> _triggers = Channel.CreateBounded<string>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.Wait });

    public int Capacity => capacity;

    /// <summary>Queues a trigger; false when <see cref="Capacity"/> triggers already wait.</summary>
    public bool TryFire(string tag) => _triggers.Writer.TryWrite(tag);

    /// <summary>The next trigger's tag, waiting for one.</summary>
    public ValueTask<string> NextAsync(CancellationToken cancellationToken) => _triggers.Reader.ReadAsync(cancellationToken);

    /// <summary>Takes a waiting trigger without waiting (to answer the triggers a lost camera cannot serve).</summary>
    public bool TryTake(out string tag) => _triggers.Reader.TryRead(out tag!);
}
