"""The empty-prompt embedding StableSR samples with: our OpenCLIP text tower against open_clip's computation written
out here in plain tensor algebra (token + position embeddings; pre-norm blocks with causal multi-head attention from
the packed in_proj weights and a GELU MLP; all blocks but the last; ln_final), at a tiny size with random weights."""
import math

import torch
from torch.nn import functional as F

from srdiff_basicsr.archs.openclip_text_arch import (END_OF_TEXT, START_OF_TEXT, OpenCLIPTextTower,
                                                     empty_prompt_embedding, empty_prompt_tokens)

WIDTH, LAYERS, HEADS, CONTEXT = 32, 3, 4, 77


def random_state_dict(seed=0):
    torch.manual_seed(seed)
    tower = OpenCLIPTextTower(49408, WIDTH, LAYERS, HEADS, CONTEXT, 16)
    for p in tower.parameters():
        p.data.normal_(0, 0.5)
    return tower.state_dict()


def layer_norm(x, sd, name):
    return F.layer_norm(x, (x.shape[-1], ), sd[f'{name}.weight'], sd[f'{name}.bias'], 1e-5)


def reference(sd, tokens, heads, skip_last=1):
    x = sd['token_embedding.weight'][tokens] + sd['positional_embedding']
    n, width = x.shape[1], x.shape[2]
    d = width // heads
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    layers = 1 + max(int(k.split('.')[2]) for k in sd if k.startswith('transformer.resblocks.'))
    for i in range(layers - skip_last):
        p = f'transformer.resblocks.{i}.'
        h = layer_norm(x, sd, p + 'ln_1')
        q, k, v = (h @ sd[p + 'attn.in_proj_weight'].T + sd[p + 'attn.in_proj_bias']).split(width, dim=-1)
        q, k, v = (t.reshape(1, n, heads, d).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(d)).masked_fill(~causal, float('-inf'))
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(1, n, width)
        x = x + attended @ sd[p + 'attn.out_proj.weight'].T + sd[p + 'attn.out_proj.bias']
        h = layer_norm(x, sd, p + 'ln_2') @ sd[p + 'mlp.c_fc.weight'].T + sd[p + 'mlp.c_fc.bias']
        x = x + F.gelu(h) @ sd[p + 'mlp.c_proj.weight'].T + sd[p + 'mlp.c_proj.bias']
    return layer_norm(x, sd, 'ln_final')


def test_the_empty_prompt_tokens_are_start_end_then_padding():
    tokens = empty_prompt_tokens()
    assert tokens.shape == (1, 77) and tokens[0, :2].tolist() == [START_OF_TEXT, END_OF_TEXT]
    assert (tokens[0, 2:] == 0).all()


def test_the_penultimate_layer_embedding_of_the_empty_prompt_matches_the_reference():
    sd = random_state_dict()
    ours = empty_prompt_embedding(sd, heads=HEADS)
    expected = reference(sd, empty_prompt_tokens(), HEADS)
    assert ours.shape == (1, CONTEXT, WIDTH)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-4), (ours - expected).abs().max()
    # the last block is skipped (SD 2.x), and the causal mask keeps the first tokens free of the padding's
    assert not torch.allclose(ours, reference(sd, empty_prompt_tokens(), HEADS, skip_last=0), atol=1e-2)
    other = empty_prompt_tokens()
    other[0, 10] = 5
    changed = OpenCLIPTextTower.from_state_dict(sd, HEADS)(other)
    assert torch.allclose(changed[:, :10], ours[:, :10], atol=1e-5) and not torch.allclose(changed, ours, atol=1e-3)


def test_a_saved_causal_mask_is_accepted_and_the_head_count_defaults_to_width_over_64():
    sd = random_state_dict()
    sd['attn_mask'] = torch.full((CONTEXT, CONTEXT), float('-inf')).triu(1)
    assert torch.equal(empty_prompt_embedding(sd, heads=HEADS), empty_prompt_embedding(random_state_dict(), HEADS))
    wide = OpenCLIPTextTower(49408, 128, 1, 2, CONTEXT, 8).state_dict()
    assert OpenCLIPTextTower.from_state_dict(wide).transformer.resblocks[0].attn.num_heads == 2
