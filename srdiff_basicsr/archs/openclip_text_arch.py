"""OpenCLIP's text tower (ViT-H-14's for Stable Diffusion 2.x), only to compute the embedding of the empty prompt that
StableSR always samples with: the converter runs it once from the checkpoint's ``cond_stage_model.model.*``."""
import torch
from torch import nn

START_OF_TEXT, END_OF_TEXT = 49406, 49407  # CLIP's BPE vocabulary; the padding is token 0 (open_clip's)


class TextBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)) (causal), then x + mlp(ln_2(x)) with a GELU MLP of 4x width."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module('c_fc', nn.Linear(width, 4 * width))
        self.mlp.add_module('gelu', nn.GELU())
        self.mlp.add_module('c_proj', nn.Linear(4 * width, width))

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class OpenCLIPTextTower(nn.Module):
    """Token and position embeddings, ``layers`` causal blocks, ``ln_final``; ``forward(tokens, skip_last)``
    returns ln_final of the output of all blocks but the last ``skip_last`` (SD 2.x's penultimate layer: 1).
    Names as open_clip's CLIP text parameters (``text_projection`` kept for loading, unused here).

    Args (ViT-H-14: 49408, 1024, 24, 16, 77, 1024)."""

    def __init__(self, vocab_size=49408, width=1024, layers=24, heads=16, context_length=77, embed_dim=1024):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList([TextBlock(width, heads) for _ in range(layers)])
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))

    @classmethod
    def from_state_dict(cls, state_dict, heads=None):
        """The tower of ``state_dict``'s sizes (heads: width / 64, ViT-H-14's, unless given), loaded strictly (an
        ``attn_mask`` entry, the causal mask older open_clip versions saved, is dropped: it is rebuilt here)."""
        state_dict = {key: value for key, value in state_dict.items() if key != 'attn_mask'}
        vocab_size, width = state_dict['token_embedding.weight'].shape
        layers = 1 + max(int(key.split('.')[2]) for key in state_dict if key.startswith('transformer.resblocks.'))
        tower = cls(vocab_size, width, layers, heads or max(1, width // 64),
                    state_dict['positional_embedding'].shape[0], state_dict['text_projection'].shape[1])
        tower.load_state_dict(state_dict)
        return tower

    def forward(self, tokens, skip_last=1):
        x = self.token_embedding(tokens) + self.positional_embedding
        n = tokens.shape[1]
        mask = torch.full((n, n), float('-inf'), device=x.device, dtype=x.dtype).triu(1)
        for block in self.transformer.resblocks[:len(self.transformer.resblocks) - skip_last]:
            x = block(x, mask)
        return self.ln_final(x)


def empty_prompt_tokens(context_length=77):
    """The tokens of '' as open_clip's tokenizer gives them: start, end, then zeros."""
    tokens = torch.zeros(1, context_length, dtype=torch.long)
    tokens[0, 0], tokens[0, 1] = START_OF_TEXT, END_OF_TEXT
    return tokens


@torch.no_grad()
def empty_prompt_embedding(state_dict, heads=None):
    """(1, 77, width): Stable Diffusion 2.x's text condition of the empty prompt (penultimate layer, ln_final) from
    an OpenCLIP text tower's state dict."""
    tower = OpenCLIPTextTower.from_state_dict(state_dict, heads).eval()
    return tower(empty_prompt_tokens(tower.positional_embedding.shape[0]).to(tower.positional_embedding.device))

