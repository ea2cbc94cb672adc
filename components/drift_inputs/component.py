"""KFP component: the drift check's two sides (training reference, recent data) as canonical folders."""

from kfp.dsl import Dataset, Output

from components.common import component


@component()
def drift_inputs(reference: Output[Dataset], current: Output[Dataset], reference_source: str = "movielens",
                 current_source: str = "", shift_strength: float = 0.0, seed: int = 7) -> str:
    """``current_source`` given: compare it with ``reference_source`` as they are. Empty: split the reference's
    events at random into two halves (no drift expected) and, with ``shift_strength`` > 0, shift the
    current half (``smartreco.monitoring.shift``: what the check must catch). Returns a description."""
    from smartreco.data.io import write_folder
    from smartreco.data.sources import load_source
    from smartreco.monitoring.shift import shift_data, split_unshifted

    ref = load_source(reference_source)
    if current_source:
        cur, how = load_source(current_source), f"{current_source} vs {reference_source}"
    else:
        ref, cur = split_unshifted(ref, seed=seed)
        how = f"random halves of {reference_source}"
        if shift_strength > 0:
            cur = shift_data(cur, strength=shift_strength, seed=seed)
            how += f", current shifted (strength {shift_strength})"
    write_folder(ref, reference.path)
    write_folder(cur, current.path)
    print(how, f"reference {len(ref.interactions)} events, current {len(cur.interactions)} events")
    return how
