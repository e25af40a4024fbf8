/**
 * Threshold brush on PET SUV. Cornerstone's THRESHOLD_INSIDE_CIRCLE strategy evaluates the threshold on the
 * labelmap's referenced volume (the CT, via getStrategyData → getReferenceVolumeForSegmentationVolume), so it would
 * threshold HU. This registers a BrushStrategy built from Cornerstone's own circle compositions (region fill,
 * setValue, circle initialisation, preview, cursor) with one custom `createIsInThreshold` composition that samples
 * the PET volume (SUV, scaled by the scalingModule provider) at the world position of each labelmap voxel.
 */
import { cache, utilities as csUtils, type Types } from '@cornerstonejs/core';
import BrushStrategy from '@cornerstonejs/tools/tools/segmentation/strategies/BrushStrategy';
import { CIRCLE_STRATEGY } from '@cornerstonejs/tools/tools/segmentation/strategies/fillCircle';
import StrategyCallbacks from '@cornerstonejs/tools/enums/StrategyCallbacks';

export const PET_THRESHOLD_STRATEGY_NAME = 'PET_SUV_THRESHOLD_INSIDE_CIRCLE';

/* eslint-disable @typescript-eslint/no-explicit-any */
export function createPetThresholdStrategy(getPetVolumeId: () => string | null, getRange: () => [number, number]) {
  const petThreshold = {
    [StrategyCallbacks.CreateIsInThreshold]: (operationData: any) => {
      const { segmentationVoxelManager, segmentationImageData, segmentIndex } = operationData;
      const petId = getPetVolumeId();
      const pet = petId ? (cache.getVolume(petId) as Types.IImageVolume | undefined) : undefined;
      if (!segmentIndex || !pet) return () => false;
      const [lo, hi] = getRange();
      const petVM = pet.voxelManager as any;
      const [nx, ny, nz] = pet.dimensions;
      return (index: number) => {
        const ijk = segmentationVoxelManager.toIJK(index);
        const world = segmentationImageData.indexToWorld(ijk) as Types.Point3;
        const p = csUtils.transformWorldToIndex(pet.imageData as any, world);
        const [i, j, k] = [Math.round(p[0]), Math.round(p[1]), Math.round(p[2])];
        if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) return false;
        const suv = petVM.getAtIJK(i, j, k) as number;
        return suv >= lo && suv <= hi;
      };
    },
  };
  const base = (CIRCLE_STRATEGY as any).compositions.filter(
    (c: any) => !Object.prototype.hasOwnProperty.call(c, StrategyCallbacks.CreateIsInThreshold),
  );
  const strategy = new (BrushStrategy as any)('PetSuvThresholdCircle', ...base, petThreshold);
  return strategy.strategyFunction;
}
