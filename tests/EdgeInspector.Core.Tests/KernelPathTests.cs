using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Tests;

public sealed class KernelPathTests
{
    [Fact]
    public void Every_byte_kernel_this_machine_can_run_is_among_those_held_to_the_twin()
    {
        var window = WindowMaxDot.Paths();
        var kept = KeptMaxDot.Paths();
        if (RuntimeInformation.ProcessArchitecture == Architecture.Arm64)
        {
            // The Arm run (scripts/test-arm64.sh) exists for the sdot kernels: on a CPU or an emulator without
            // the dot-product extension the tests would hold the plain twin to itself and pass.
            Assert.True(Dp.IsSupported, "This Arm64 CPU has no dot-product extension (FEAT_DotProd): the sdot kernels are not tested. Run under qemu-aarch64 -cpu max.");
            Assert.Contains("dp", window);
            Assert.Contains("dp", kept);
        }
        if (AvxVnni.IsSupported) Assert.Contains("vnni", window);
        if (Avx2.IsSupported) Assert.Contains("avx2", window);
        Assert.Equal(window, kept);
        Assert.Equal("scalar", window[^1]);
        Assert.True(window.Count >= 2 || !(Avx2.IsSupported || Dp.IsSupported), $"Paths: {string.Join(", ", window)}");
    }
}
