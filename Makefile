# spine_nb: two commands do all set-up on a fresh machine.
#   make demo   build .venv (if missing) and run the main job on the synthetic default
#   make test   build the same environment and run every test
#   make accuracy  issue 3's measurement: train the cpu preset on 60 phantoms, score 10 held-out ones (~35 min on 2 cores); ACCURACY_MODELS=DIR scores given models instead
#   make accuracy-mr the same for MR: MR phantoms (T1, T2, random contrasts, sagittal slabs), MR models
#   make learning-curve make accuracy on 20, 40 and 80 training phantoms, per field of view on the same 30 held-out ones (~1.5 h)
#   make lstv      LSTV classes of 30 synthetic RSNA-layout lumbar MRI studies labelled with `baselines-mr-ribs-cpu2d`, which counts from the last rib (~6 min;
#                  LSTV_WEIGHTS=NAME for another family, LSTV_MODELS=DIR for trained models of any method,
#                  LSTV_SEED=N for another set of studies, LSTV_SLAB=60 for sagittal series as narrow as RSNA's,
#                  LSTV_CASTELLVI=True to give the last lumbar vertebrae Castellvi types and score them)
#   make lstv-model train the recipe of `baselines-mr-ribs-cpu2d` again: 100 MR phantoms, half with Castellvi types, 2D UNet with ribs (~32 min)
#   make compare   every method on the same held-out phantoms and real scans (trains the MONAI baselines once, ~30 min each)
#   make compare-mr the same on lumbar and thoracolumbar MR phantoms and the real MRI, discs and canal scored (~2.5 h with training, ~15 min with the models cached)
#   make compare-nnunet-export  make compare's phantoms as an nnU-Net dataset (spine_nb's folds) and test inputs; COMPARE_EXTERNAL=nnunet:DIR scores its predictions
#   make realcheck the real-scan benchmark: run the shipped weights (REALCHECK_MODELS=DIR for others) on every scan of ../shared/data/real
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

.PHONY: env demo test test-nbs test-py export clean-nbs lab help accuracy accuracy-mr learning-curve lstv lstv-model realcheck compare compare-mr compare-nnunet-export

help:
	@echo "make demo | make test | make lab | make export | make accuracy | make accuracy-mr | make learning-curve | make lstv | make lstv-model | make realcheck | make compare | make compare-mr"

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	# torch pinned in the same command as monai so pip takes 2.13.0 (CPU here, CUDA on GPU machines)
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

env: $(STAMP)

demo: env
	$(BIN)/python -m spine_nb.demo

export: env
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

test-nbs: env
	$(BIN)/nbdev_test --n_workers 2 --timing

test-py: env
	$(BIN)/python -m pytest nbs/tests

test: env test-nbs test-py

lab: env
	$(BIN)/jupyter lab nbs

ACCURACY_DIR ?= outputs/accuracy
ACCURACY_MODELS ?=
ACCURACY_TRAINING_MIN ?= -1
accuracy: env
	mkdir -p $(ACCURACY_DIR)
	$(BIN)/papermill nbs/pipelines/33_accuracy.heldout.ipynb $(ACCURACY_DIR)/33_accuracy.heldout.ipynb --log-output \
	  -p run_dir $(abspath $(ACCURACY_DIR)) -p preset cpu -p n_train 60 -p n_test 10 -p extra_test_seeds 2000,3000 -p spacing 0 -p device cpu \
	  $(if $(ACCURACY_MODELS),-p model_dir $(abspath $(ACCURACY_MODELS)) -p training_min $(ACCURACY_TRAINING_MIN) -p test_data_dir $(abspath outputs/compare))
	cat $(ACCURACY_DIR)/summary.json

ACCURACY_MR_DIR ?= outputs/accuracy_mr
accuracy-mr: env
	mkdir -p $(ACCURACY_MR_DIR)
	$(BIN)/papermill nbs/pipelines/33_accuracy.heldout.ipynb $(ACCURACY_MR_DIR)/33_accuracy.heldout.ipynb --log-output \
	  -p run_dir $(abspath $(ACCURACY_MR_DIR)) -p preset cpu -p n_train 60 -p n_test 10 -p extra_test_seeds 2000,3000 -p spacing 0 -p device cpu -p modality mr
	cat $(ACCURACY_MR_DIR)/summary.json

# make learning-curve: make accuracy's cpu runs on 20, 40 and 80 training phantoms, scored on make compare's 30 held-out phantoms
LEARNING_CURVE_DIR ?= outputs/learning_curve
LEARNING_CURVE_SIZES ?= 20,40,80
learning-curve: env
	mkdir -p $(LEARNING_CURVE_DIR)
	for s in 1000:test_data 2000:test_data_2000 3000:test_data_3000; do IFS=: read seed name <<< "$$s"; \
	  test -f outputs/compare/$$name/dataset.csv || $(BIN)/spine-nb phantom --out outputs/compare/$$name --n 10 --seed $$seed --workers 2 -q || exit 1; done
	$(BIN)/papermill nbs/pipelines/33b_accuracy.learning_curve.ipynb $(LEARNING_CURVE_DIR)/33b_accuracy.learning_curve.ipynb --log-output \
	  -p run_dir $(abspath $(LEARNING_CURVE_DIR)) -p preset cpu -p n_trains $(LEARNING_CURVE_SIZES) -p n_test 10 -p extra_test_seeds 2000,3000 \
	  -p spacing 0 -p device cpu -p test_data_dir $(abspath outputs/compare)
	cat $(LEARNING_CURVE_DIR)/learning_curve.csv

# make lstv: 30 synthetic lumbar MRI studies in the RSNA layout (normal, sacralisation, lumbarisation), labelled and scored
LSTV_DIR ?= outputs/lstv
LSTV_WEIGHTS ?= baselines-mr-ribs-cpu2d
LSTV_MODELS ?=
LSTV_SLAB ?= 0
LSTV_SEED ?= 5000
LSTV_CASTELLVI ?= False
lstv: env
	mkdir -p $(LSTV_DIR)
	$(BIN)/papermill nbs/pipelines/36_lstv.studies.ipynb $(LSTV_DIR)/36_lstv.studies.ipynb --log-output \
	  -p run_dir $(abspath $(LSTV_DIR)) -p n_studies 30 -p seed $(LSTV_SEED) -p spacing 1.0,1.0,4.0 -p all_series True -p weights "$(LSTV_WEIGHTS)" -p slab_mm $(LSTV_SLAB) -p castellvi $(LSTV_CASTELLVI) -p device cpu \
	  $(if $(LSTV_MODELS),-p model_dir $(abspath $(LSTV_MODELS)))
	cat $(LSTV_DIR)/lstv_summary.json

# make lstv-model: the shipped rib-counting family's recipe (the phantoms of make compare-mr's train_spine, with the last
# lumbar vertebra of half of them given a drawn Castellvi type); then `spine-nb weights pack --method baselines --half ...`
LSTV_MODEL_DIR ?= outputs/lstv_model
lstv-model: env
	for s in 0:60:lumbar:train_data 7:40:thoracolumbar:train_tl; do IFS=: read seed n fov name <<< "$$s"; test -f $(LSTV_MODEL_DIR)/$$name/dataset.csv || \
	  $(BIN)/spine-nb phantom --out $(LSTV_MODEL_DIR)/$$name --n $$n --seed $$seed --modality mr --fov $$fov --castellvi-rate 0.5 --workers 2 -q || exit 1; done
	$(BIN)/python -c "import sys, pandas as pd; from spine_nb.data.io import read_dataset_csv, write_dataset_csv; \
	  write_dataset_csv(pd.concat([read_dataset_csv(c).assign(name=lambda d, k=k: d['name'] + k, subject=lambda d, k=k: d['subject'] + k) for c, k in zip(sys.argv[1:3], ('', '-tl'))]), sys.argv[3])" \
	  $(LSTV_MODEL_DIR)/train_data/dataset.csv $(LSTV_MODEL_DIR)/train_tl/dataset.csv $(LSTV_MODEL_DIR)/train_spine/dataset.csv
	$(BIN)/spine-nb train --method baselines --csv $(LSTV_MODEL_DIR)/train_spine/dataset.csv --output $(LSTV_MODEL_DIR)/model --modality mri \
	  --preset cpu2d --network unet --label_scheme thoracolumbar_ribs --epochs 100 --device cpu --no_progress

REALCHECK_DIR ?= outputs/realcheck
REALCHECK_MODELS ?= spine_nb/shipped/payer-ct-cpu
REALCHECK_MRI_MODELS ?= spine_nb/shipped/baselines-mr-cpu2d
REALCHECK_MODALITIES ?=
realcheck: env
	mkdir -p $(REALCHECK_DIR)
	$(BIN)/papermill nbs/pipelines/34_realcheck.ipynb $(REALCHECK_DIR)/34_realcheck.ipynb --log-output \
	  -p run_dir $(abspath $(REALCHECK_DIR)) -p model_dir $(abspath $(REALCHECK_MODELS)) -p mri_model_dir "$(if $(REALCHECK_MRI_MODELS),$(abspath $(REALCHECK_MRI_MODELS)))" -p modalities "$(REALCHECK_MODALITIES)" -p device cpu
	cat $(REALCHECK_DIR)/realcheck_summary.json

# make compare: the training set and held-out seeds of make accuracy (made once), IterativeFCN and each MONAI baseline trained once
# with the cpu preset (COMPARE_BASELINES: NAME=NETWORK:SCHEME), then nbs/pipelines/35_compare.ipynb on the shipped CT family and them
COMPARE_DIR ?= outputs/compare
COMPARE_BASELINES ?= unet=unet:verse segresnet=segresnet:verse unet-generic=unet:vertebra
# COMPARE_EXTERNAL=NAME:FOLDER,...: label maps predicted elsewhere (an nnU-Net), one subfolder per held-out set (make compare-nnunet-export)
COMPARE_EXTERNAL ?=
compare: env
	mkdir -p $(COMPARE_DIR)/models
	for s in 0:60:train_data 1000:10:test_data 2000:10:test_data_2000 3000:10:test_data_3000; do IFS=: read seed n name <<< "$$s"; \
	  test -f $(COMPARE_DIR)/$$name/dataset.csv || $(BIN)/spine-nb phantom --out $(COMPARE_DIR)/$$name --n $$n --seed $$seed --workers 2 -q || exit 1; done
	test -f $(COMPARE_DIR)/models/iterative_fcn/iterative_fcn/instances/checkpoints/fold_0/best.pth || $(BIN)/spine-nb train --method iterative_fcn \
	  --csv $(COMPARE_DIR)/train_data/dataset.csv --output $(COMPARE_DIR)/models/iterative_fcn --preset cpu --device cpu --no_progress
	for b in $(COMPARE_BASELINES); do name=$${b%%=*}; spec=$${b#*=}; \
	  test -f $(COMPARE_DIR)/models/$$name/baselines/semantic/checkpoints/fold_0/best.pth || \
	  $(BIN)/spine-nb train --method baselines --csv $(COMPARE_DIR)/train_data/dataset.csv --output $(COMPARE_DIR)/models/$$name \
	    --preset cpu --network $${spec%%:*} --label_scheme $${spec#*:} --device cpu --no_progress || exit 1; done
	$(BIN)/papermill nbs/pipelines/35_compare.ipynb $(COMPARE_DIR)/35_compare.ipynb --log-output -p run_dir $(abspath $(COMPARE_DIR)) \
	  -p test_csvs "$(abspath $(COMPARE_DIR))/test_data/dataset.csv,$(abspath $(COMPARE_DIR))/test_data_2000/dataset.csv,$(abspath $(COMPARE_DIR))/test_data_3000/dataset.csv" \
	  -p iterative_fcn_model_dir $(abspath $(COMPARE_DIR))/models/iterative_fcn -p baselines "$(foreach b,$(COMPARE_BASELINES),$(firstword $(subst =, ,$(b))):$(abspath $(COMPARE_DIR))/models/$(firstword $(subst =, ,$(b))),)" -p device cpu \
	  -p external "$(COMPARE_EXTERNAL)"
	cat $(COMPARE_DIR)/compare_methods.csv

# make compare-nnunet-export: make compare's training set as an nnU-Net v2 raw dataset with spine_nb's folds (Dataset501_SpineNB)
# and each held-out set as imagesTs, for a user to train and predict with nnU-Net (COMPARE_DIR/nnunet/README.txt says how)
compare-nnunet-export: env
	for s in 0:60:train_data 1000:10:test_data 2000:10:test_data_2000 3000:10:test_data_3000; do IFS=: read seed n name <<< "$$s"; \
	  test -f $(COMPARE_DIR)/$$name/dataset.csv || $(BIN)/spine-nb phantom --out $(COMPARE_DIR)/$$name --n $$n --seed $$seed --workers 2 -q || exit 1; done
	$(BIN)/spine-nb export-nnunet --csv $(COMPARE_DIR)/train_data/dataset.csv --out $(COMPARE_DIR)/nnunet/raw --id 501 -q
	for name in test_data test_data_2000 test_data_3000; do $(BIN)/spine-nb export-nnunet --csv $(COMPARE_DIR)/$$name/dataset.csv \
	  --out $(COMPARE_DIR)/nnunet/test/$$name --test_only -q || exit 1; done
	printf '%s\n' "nnU-Net on make compare's phantoms: export nnUNet_raw=$(abspath $(COMPARE_DIR))/nnunet/raw (and nnUNet_preprocessed, nnUNet_results)," \
	  "nnUNetv2_plan_and_preprocess -d 501 --verify_dataset_integrity; cp raw/Dataset501_SpineNB/splits_final.json into the preprocessed Dataset501_SpineNB;" \
	  "nnUNetv2_train 501 3d_fullres 0; for each set S of test/: nnUNetv2_predict -i test/S/imagesTs -o predictions/S -d 501 -c 3d_fullres -f 0;" \
	  "then make compare COMPARE_EXTERNAL=nnunet:$(abspath $(COMPARE_DIR))/nnunet/predictions" > $(COMPARE_DIR)/nnunet/README.txt
	cat $(COMPARE_DIR)/nnunet/README.txt

# make compare-mr: MR phantoms (60 lumbar of seed 0, 40 thoracolumbar of seed 7 and 60 lumbar of seed 20 with random contrasts
# to train; 10 lumbar of seed 1000 and 10
# thoracolumbar of seed 1007 held out), the MONAI baselines of the MR schemes trained once (COMPARE_MR_BASELINES:
# NAME=NETWORK:SCHEME:TRAINING_SET:EPOCHS[:PRESET], preset cpu unless named; train_spine = train_data + train_tl), the experimental three-stage MR family
COMPARE_MR_DIR ?= outputs/compare_mr
COMPARE_MR_BASELINES ?= unet-lumbar-aug=unet:lumbar:train_data:60 unet-tl=unet:thoracolumbar:train_spine:40 unet-lumbar-random=unet:lumbar:train_random:60 \
  unet2d-lumbar=unet:lumbar:train_data:150:cpu2d unet2d-tl=unet:thoracolumbar:train_spine:100:cpu2d unet2d-tlr=unet:thoracolumbar_ribs:train_spine:100:cpu2d
compare-mr: env
	mkdir -p $(COMPARE_MR_DIR)/models
	for s in 0:60:lumbar:mixed:train_data 7:40:thoracolumbar:mixed:train_tl 20:60:lumbar:random:train_random 1000:10:lumbar:mixed:test_data \
	  1007:10:thoracolumbar:mixed:test_tl; do IFS=: read seed n fov contrast name <<< "$$s"; test -f $(COMPARE_MR_DIR)/$$name/dataset.csv || \
	  $(BIN)/spine-nb phantom --out $(COMPARE_MR_DIR)/$$name --n $$n --seed $$seed --modality mr --fov $$fov --contrast $$contrast --workers 2 -q || exit 1; done
	test -f $(COMPARE_MR_DIR)/train_spine/dataset.csv || $(BIN)/python -c "import sys, pandas as pd; from spine_nb.data.io import read_dataset_csv, write_dataset_csv; \
	  write_dataset_csv(pd.concat([read_dataset_csv(c).assign(name=lambda d, k=k: d['name'] + k, subject=lambda d, k=k: d['subject'] + k) for c, k in zip(sys.argv[1:3], ('', '-tl'))]), sys.argv[3])" \
	  $(COMPARE_MR_DIR)/train_data/dataset.csv $(COMPARE_MR_DIR)/train_tl/dataset.csv $(COMPARE_MR_DIR)/train_spine/dataset.csv
	for b in $(COMPARE_MR_BASELINES); do name=$${b%%=*}; IFS=: read net scheme data epochs preset <<< "$${b#*=}"; \
	  test -f $(COMPARE_MR_DIR)/models/$$name/baselines/semantic/checkpoints/fold_0/best.pth || \
	  $(BIN)/spine-nb train --method baselines --csv $(COMPARE_MR_DIR)/$$data/dataset.csv --output $(COMPARE_MR_DIR)/models/$$name --modality mri \
	    --preset $${preset:-cpu} --network $$net --label_scheme $$scheme --epochs $$epochs --device cpu --no_progress || exit 1; done
	$(BIN)/papermill nbs/pipelines/35_compare.ipynb $(COMPARE_MR_DIR)/35_compare.ipynb --log-output -p run_dir $(abspath $(COMPARE_MR_DIR)) \
	  -p test_csvs "$(abspath $(COMPARE_MR_DIR))/test_data/dataset.csv,$(abspath $(COMPARE_MR_DIR))/test_tl/dataset.csv" -p payer_family payer-mr-cpu \
	  -p baselines "$(foreach b,$(COMPARE_MR_BASELINES),$(firstword $(subst =, ,$(b))):$(abspath $(COMPARE_MR_DIR))/models/$(firstword $(subst =, ,$(b))),)" -p device cpu
	cat $(COMPARE_MR_DIR)/compare_methods.csv
