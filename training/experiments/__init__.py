"""Experiments built on the training library: they measure recipes, they are not the recipe.

python -m training.experiments.compare      baselines side by side
python -m training.experiments.curve        low-label learning curves
python -m training.experiments.search       Optuna search on validation only
python -m training.experiments.ablation     each part of the shipped recipe in turn
python -m training.experiments.adaptation   fine-tuning to social posts with few labels
python -m training.experiments.recipe_search Optuna search over the shipped recipe's knobs
python -m training.experiments.seeds        the recipe's spread over seeds; the seed chosen
python -m training.experiments.crossfit     held-out figures for an in-domain file trained on
"""
