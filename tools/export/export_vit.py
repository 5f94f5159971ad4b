#!/usr/bin/env python3
"""Export a ViT (DINOv2 or OpenAI CLIP) as a multi-output feature backbone for EdgeInspector.

EdgeInspector reads taps as named ONNX outputs shaped [batch, channels, height, width]. A ViT gives
tokens [batch, 1 + h*w, width]; this wrapper drops the class token and reshapes the patch tokens of the
chosen blocks onto the patch grid, so the engine treats them exactly like CNN stages (spec §0.1, §2.2).
Taps are the raw residual stream after each block, as MuSc uses them.

Needs, on a machine with internet access: python3, torch, onnx, and for CLIP open_clip_torch.
  pip install torch onnx open_clip_torch
  python3 tools/export/export_vit.py dinov2_vitb14 --size 518 --blocks 3 6 9 12 --out models/dinov2_vitb14.onnx
  python3 tools/export/export_vit.py clip_vitl14_336 --size 518 --blocks 6 12 18 24 --out models/clip_vitl14.onnx
Then set, in the backbone configuration: the model path, input size, the CLIP or ImageNet mean/std
(printed at the end), taps block6,block12,... and degrees 1,3,5.

Not verified on the development machines (no torch, no ViT weights offline): check the printed output
shapes, and compare accuracy with edgeinspector-eval before deploying.
"""
import argparse

import torch


class Taps(torch.nn.Module):
    def __init__(self, blocks_module, embed, grid, wanted):
        super().__init__()
        self.blocks = blocks_module
        self.embed = embed
        self.grid = grid
        self.wanted = sorted(wanted)

    def forward(self, x):
        tokens = self.embed(x)
        outs = []
        for i, block in enumerate(self.blocks, start=1):
            tokens = block(tokens)
            if i in self.wanted:
                patches = tokens[:, -self.grid * self.grid:, :]  # drop class (and register) tokens
                b, n, c = patches.shape
                outs.append(patches.transpose(1, 2).reshape(b, c, self.grid, self.grid))
            if i == self.wanted[-1]:
                break
        return tuple(outs)


def dinov2(name, size):
    model = torch.hub.load("facebookresearch/dinov2", name).eval()
    patch = model.patch_embed.patch_size[0]

    def embed(x):
        return model.prepare_tokens_with_masks(x)

    return model.blocks, embed, size // patch, ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def clip(name, size):
    import open_clip
    model, _, _ = open_clip.create_model_and_transforms("ViT-L-14-336", pretrained="openai", force_image_size=size)
    visual = model.visual.eval()
    patch = visual.conv1.kernel_size[0]

    def embed(x):
        x = visual.conv1(x).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        return visual.ln_pre(x)

    return visual.transformer.resblocks, embed, size // patch, ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=["dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "clip_vitl14_336"])
    p.add_argument("--size", type=int, default=518, help="square input size, a multiple of the patch size")
    p.add_argument("--blocks", type=int, nargs="+", required=True, help="1-based blocks to tap")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    blocks, embed, grid, (mean, std) = (clip if a.model.startswith("clip") else dinov2)(a.model, a.size)
    wrapper = Taps(blocks, embed, grid, a.blocks).eval()
    names = [f"block{b}" for b in sorted(a.blocks)]
    dummy = torch.zeros(1, 3, a.size, a.size)
    with torch.no_grad():
        shapes = [tuple(o.shape) for o in wrapper(dummy)]
        torch.onnx.export(wrapper, dummy, a.out, input_names=["input"], output_names=names, opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}})
    print(f"wrote {a.out}: input [B,3,{a.size},{a.size}], taps " + ", ".join(f"{n} {s}" for n, s in zip(names, shapes)))
    print(f"mean {list(mean)} std {list(std)} channel order rgb")


if __name__ == "__main__":
    main()
