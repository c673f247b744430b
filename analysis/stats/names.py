"""The names of the stats stage's tests, as the ``test`` column of ``stats/tests.tsv`` spells
them, and the columns of tables built in more than one place."""

GROUP_EPOCH_TEST = "group_x_epoch_signed_separation_across_animals_t"
GROUP_EPOCH_NEURON_TEST = "group_x_epoch_signed_separation_neuron_labels_within_animal"
OUTCOME_TEST = "hit_vs_failure_residual_signed_by_group_trial_permutation"
EARLY_CHANGE_TEST = "early_residual_vs_later_activity_change_within_animal_x_group"
EARLY_CHANGE_COLUMNS = ["subject", "soma_roi", "early_residual_z", "n_events", "activity_change"]
NETWORK_TEST = "network_prediction_non_targets_cv_ridge_vs_within_neuron_shuffles"
NETWORK_NEUROPIL_TEST = "network_prediction_control_neuropil_only"
