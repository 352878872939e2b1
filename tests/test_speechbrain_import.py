"""A SpeechBrain model folder (spkrec-ecapa-voxceleb layout, random weights) converts into
our pretrained folder and gives the same embeddings as SpeechBrain's EncoderClassifier."""

import numpy as np
import pytest
import torch
from conftest import speechbrain_model_folder
from speechbrain.inference.speaker import EncoderClassifier

from custom_modules import SpeakerEncoder
from custom_modules.interop.speechbrain import import_speechbrain
from data_prep.synthetic_audio import speech_like


@pytest.fixture(scope="module")
def speechbrain_folder(tmp_path_factory):
    return speechbrain_model_folder(tmp_path_factory.mktemp("spkrec"))


def test_converted_folder_gives_speechbrains_embeddings(speechbrain_folder, tmp_path):
    ours = SpeakerEncoder.from_hparams(import_speechbrain(speechbrain_folder, tmp_path / "ours"))
    theirs = EncoderClassifier.from_hparams(source=str(speechbrain_folder),
                                            savedir=str(tmp_path / "sb"))
    assert (tmp_path / "ours/label_encoder.txt").is_file()
    rng = np.random.default_rng(0)
    for seconds in (1.5, 3.2):
        wave = torch.from_numpy(speech_like(seconds, 16000, rng)).float()
        expected = theirs.encode_batch(wave.unsqueeze(0))[0, 0]
        got = ours.encode_batch(wave.unsqueeze(0))[0, 0]
        assert torch.nn.functional.cosine_similarity(got, expected, dim=0) >= 0.9999


def test_embedding_normalisation_when_asked(speechbrain_folder, tmp_path):
    target = import_speechbrain(speechbrain_folder, tmp_path / "ours")
    hparams = target / "hyperparams.yaml"
    hparams.write_text(hparams.read_text().replace("normalize_embeddings: false",
                                                   "normalize_embeddings: true"))
    ours = SpeakerEncoder.from_hparams(target)
    theirs = EncoderClassifier.from_hparams(source=str(speechbrain_folder),
                                            savedir=str(tmp_path / "sb"))
    wave = torch.from_numpy(speech_like(2.0, 16000, np.random.default_rng(1))).float()
    expected = theirs.encode_batch(wave.unsqueeze(0), normalize=True)[0, 0]
    got = ours.encode_batch(wave.unsqueeze(0))[0, 0]
    assert torch.allclose(got, expected, atol=1e-4)


def test_not_a_speechbrain_folder(tmp_path):
    with pytest.raises(ValueError, match="not a SpeechBrain speaker model folder"):
        import_speechbrain(tmp_path, tmp_path / "out")


def test_speechbrain_stock_model_trained_by_our_recipe_exports_to_our_folder(tmp_path):
    """SpeechBrainFrontend + SpeechBrainStockECAPA (what the demo benchmark trains) give the same
    features as MelFrontend, and the exported folder loads into our model unchanged."""
    from benchmarks.speechbrain_stock import SpeechBrainFrontend, SpeechBrainStockECAPA
    from custom_modules.inference.pretrained import load_embedder, write_pretrained
    from custom_modules.models.embedder import Embedder
    from custom_modules.models.frontend import MelFrontend

    wavs = torch.from_numpy(np.stack([speech_like(1.5, 16000, np.random.default_rng(i))
                                      for i in range(2)])).float()
    lengths = torch.tensor([1.0, 0.7])
    frontend = SpeechBrainFrontend(n_mels=40)
    with torch.no_grad():
        theirs, ours = frontend(wavs, lengths), MelFrontend(**frontend.config)(wavs, lengths)
    assert (theirs - ours)[:, :90].abs().max() < 1e-3          # the rows' valid frames
    torch.manual_seed(0)
    model = SpeechBrainStockECAPA(input_size=40, channels=[32, 32, 32, 32, 96], lin_neurons=24)
    model.eval()
    write_pretrained(tmp_path, frontend, model)
    embedder = load_embedder(tmp_path)
    with torch.no_grad():
        expected = model(frontend(wavs[:1], torch.ones(1)))
        assert torch.nn.functional.cosine_similarity(
            embedder(wavs[:1]).reshape(-1), expected.reshape(-1), dim=0) > 0.9999
        # The recipe's validation embeds through Embedder with exact lengths; SpeechBrain's
        # modules see the padding (relative lengths), so a padded row is only close to alone.
        during_training = Embedder(frontend, model)(wavs, lengths)
        alone = Embedder(frontend, model)(wavs[1:, :round(0.7 * wavs.shape[1])])
    assert torch.nn.functional.cosine_similarity(during_training[1], alone[0], dim=0) > 0.99


def test_our_exported_folder_loads_in_speechbrains_encoder_classifier(tmp_path):
    """SpeechBrain's EncoderClassifier.from_hparams reads our folder as it is: the same
    embeddings as SpeakerEncoder (a file alone and a padded batch), and the classifier and
    label encoder it loads are ours."""
    from conftest import TINY_MODEL

    from custom_modules import ECAPA_TDNN, MelFrontend
    from custom_modules.inference.pretrained import write_pretrained
    from custom_modules.training.losses import AAMSoftmaxHead

    torch.manual_seed(0)
    model, head = ECAPA_TDNN(**TINY_MODEL).eval(), AAMSoftmaxHead(24, num_classes=3)
    labels = tmp_path / "labels.txt"
    labels.write_text("'ann' => 0\n'bob' => 1\n'cy' => 2\n================\n"
                      "'starting_index' => 0\n")
    folder = write_pretrained(tmp_path / "model", MelFrontend(n_mels=40), model, 0.3,
                              classifier=head.weight, label_encoder=labels)
    theirs = EncoderClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "sb"))
    ours = SpeakerEncoder.from_hparams(source=folder)
    wavs = torch.from_numpy(np.stack([speech_like(2.0, 16000, np.random.default_rng(i))
                                      for i in range(2)])).float()
    wavs[1, 20000:] = 0.0
    lengths = torch.tensor([1.0, 0.625])
    cos = torch.nn.functional.cosine_similarity
    with torch.no_grad():
        alone = theirs.encode_batch(wavs[:1]).reshape(-1)
        assert cos(alone, ours.encode_batch(wavs[:1]).reshape(-1), dim=0) > 0.9999
        # A padded row: SpeechBrain's loader computes the features over the padding too (as
        # it does for its own models), ours each row at its exact length; close, not equal.
        padded = theirs.encode_batch(wavs, lengths)[1, 0]
        exact = ours.encode_batch(wavs[1:, :20000]).reshape(-1)
        assert cos(padded, exact, dim=0) > 0.99
    assert torch.equal(theirs.mods.classifier.weight, head.weight)
    assert theirs.hparams.label_encoder.decode_ndim(1) == "bob"
